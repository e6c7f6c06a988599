from django.contrib import admin
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from monitoring.views.health import health
from notifications.slackbot import views as slack_views
from notifications.slackbot import views_link as slack_link_views
from reservations.api.views import NOT_FOUND_NAME, not_found
from reservations.views.account import AdminSignInForm, admin_sign_in

admin.site.site_header = "labres administration"
admin.site.site_title = "labres"
admin.site.login_form = AdminSignInForm  # the sign-in limits' refusal, said as such

urlpatterns = [
    # The API first: its requests are the most numerous, and Django tries each pattern in order.
    path("api/v1/", include("reservations.api.urls")),
    path("api/v1/telemetry/", include("monitoring.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    re_path(r"^api/", not_found, name=NOT_FOUND_NAME),  # the API's own 404, in its error shape
    path("", include("reservations.urls")),
    path("", include("monitoring.urls")),
    path("", include("reservations.sso.urls")),  # OIDC sign-in; sign-out that ends the provider's session too
    path("accounts/", include("django.contrib.auth.urls")),  # logout, password change; sign-in and reset are ours
    path("health/", health, name="health"),
    # Pages link the icon; browsers still ask /favicon.ico of pages that do not (the admin's).
    path("favicon.ico", lambda request: HttpResponsePermanentRedirect(static("favicon.svg"))),
    path("admin/login/", admin_sign_in),  # admin.site.login, answering 429 when the limits refuse
    path("admin/", admin.site.urls),
    path("slack/commands/", slack_views.slash_command, name="slack-commands"),
    path("slack/interactions/", slack_views.interaction, name="slack-interactions"),
    path("slack/link/<str:token>/", slack_link_views.confirm, name="slack-link-confirm"),
]
