from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views
from .waitlist import WaitlistViewSet

router = SimpleRouter()
router.register("servers", views.ServerViewSet, basename="api-server")
router.register("devices", views.DeviceViewSet, basename="api-device")
router.register("rooms", views.RoomViewSet, basename="api-room")
router.register("bookings", views.BookingViewSet, basename="api-booking")
router.register("waitlist", WaitlistViewSet, basename="api-waitlist")
router.register("series", views.SeriesViewSet, basename="api-series")

urlpatterns = [
    path("me/", views.MeView.as_view(), name="api-me"),
    path("auth/token/", views.TokenView.as_view(), name="api-token"),
    path("claims/", views.ClaimView.as_view(), name="api-claims"),
    path("availability/", views.AvailabilityView.as_view(), name="api-availability"),
    *router.urls,
]
