from django.contrib import admin
from django.urls import include, path

from monitoring.views import health

admin.site.site_header = "labres administration"
admin.site.site_title = "labres"

urlpatterns = [
    path("", include("reservations.urls")),
    path("accounts/", include("django.contrib.auth.urls")),  # logout, password change; sign-in is ours
    path("health/", health, name="health"),
    path("admin/", admin.site.urls),
]
