"""Times at the API's edge: read in the member's zone, written in UTC with Z."""
import zoneinfo
from datetime import UTC

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone


def utc_iso(moment):
    """'2026-03-01T09:30:00Z'."""
    text = moment.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def member_zone(user):
    """The zone a member's naive times are read in: their profile's, else the lab's (TIME_ZONE)."""
    name = ""
    if user is not None and user.is_authenticated:
        try:
            name = user.profile.time_zone
        except ObjectDoesNotExist:  # a user made without a profile
            name = ""
    try:
        return zoneinfo.ZoneInfo(name or settings.TIME_ZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def activate_member_zone(user):
    """Read and write this request's local times in the member's zone.

    The member_time_zone middleware does this for session users; a token's user is known only
    once DRF has authenticated, so API views call this after that. The middleware deactivates
    the zone when the response leaves.
    """
    timezone.activate(member_zone(user))


def query_of(request):
    """The query string as a plain dict for a query serializer.

    Given DRF's QueryDict, a serializer takes `?start=` for a parameter left out; given a dict it
    checks the empty value, so `?start=` and `?server=` are refused as the schema refuses them.
    """
    return request.query_params.dict()
