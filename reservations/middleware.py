import zoneinfo

from django.core.exceptions import ObjectDoesNotExist
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
