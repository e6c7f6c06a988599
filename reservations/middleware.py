import zoneinfo

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.http import JsonResponse
from django.utils import timezone

from labres.cli.client import USER_AGENT as CLI_USER_AGENT

from .services.audit import Surface, acting_via


def member_time_zone(get_response):
    """Show every time in the member's own time zone (their profile), else the lab's."""

    def middleware(request):
        zone = None
        if request.user.is_authenticated:
            try:
                zone = request.user.profile.time_zone
            except ObjectDoesNotExist:  # a user made without a profile: the lab's zone
                zone = None
        if zone:
            timezone.activate(zoneinfo.ZoneInfo(zone))
        try:
            return get_response(request)
        finally:
            timezone.deactivate()  # the thread serves other members next

    return middleware


def api_uri_length(get_response):
    """Refuse an API request whose path and query are longer than API_MAX_URI_LENGTH, in the API's error shape.

    gunicorn refuses a request line over its own limit with an HTML page before Django sees it; its
    config (labres/gunicorn_config.py) sets that limit above this one, so the API answers JSON itself.
    """

    def middleware(request):
        most = settings.API_MAX_URI_LENGTH
        if request.path_info.startswith("/api/") and len(request.get_full_path()) > most:
            message = f"The path and query are longer than {most} characters, the most the API reads; send less in the query."
            return JsonResponse({"error": {"code": "uri_too_long", "message": message}}, status=414)
        return get_response(request)

    return middleware


def audit_surface(get_response):
    """Log the booking actions a request makes as made via its surface (reservations.services.audit)."""

    def middleware(request):
        with acting_via(surface_of(request)):
            return get_response(request)

    return middleware


def surface_of(request):
    """The API (the command line when the labres client asks), the admin, Slack's endpoints, else the web pages."""
    path = request.path_info
    if path.startswith("/api/"):
        client = CLI_USER_AGENT.partition("/")[0] + "/"
        return Surface.CLI if request.headers.get("User-Agent", "").startswith(client) else Surface.API
    if path.startswith("/admin/"):
        return Surface.ADMIN
    if path.startswith("/slack/"):
        return Surface.SLACK
    return Surface.WEB
