import zoneinfo

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.http import JsonResponse
from django.utils import timezone


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
