from django.contrib import admin
from django.urls import include, path

from monitoring.views import health
from reservations import views as reservation_views

admin.site.site_header = "labres administration"
admin.site.site_title = "labres"

urlpatterns = [
    path("", reservation_views.now, name="now"),
    path("health/", health, name="health"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
