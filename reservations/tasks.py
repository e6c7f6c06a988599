"""Periodic work of the reservations app; thin wrappers over the services, safe to run twice."""
import logging

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

logger = logging.getLogger(__name__)


@shared_task(name="reservations.tasks.sync_calendars")
def sync_calendars():
    """Beat, every minute: sync each active external calendar last fetched more than CALENDAR_IMPORT_INTERVAL ago.

    Each sync claims its calendar's lease first, so a second beat or worker skips a calendar
    already being synced. Logs failures and never raises: one broken calendar must not stop the rest.
    """
    from . import icsimport
    from .models import ExternalCalendar
    from .parsing import parse_duration

    now = timezone.now()
    due = now - parse_duration(settings.CALENDAR_IMPORT_INTERVAL)
    calendars = ExternalCalendar.objects.filter(active=True).filter(Q(last_fetched_at__isnull=True) | Q(last_fetched_at__lte=due))
    synced = 0
    for calendar in calendars.order_by("last_fetched_at", "pk"):
        try:
            summary = icsimport.sync(calendar)
        except Exception:
            logger.exception("Syncing calendar %s (%s) failed", calendar.pk, calendar.name)
            continue
        if summary.skipped:
            continue
        synced += 1
        if summary.error:
            logger.warning("Calendar %s (%s): %s", calendar.pk, calendar.name, summary.error)
        else:
            logger.info("Calendar %s (%s): %s", calendar.pk, calendar.name, summary.status)
    return synced


def _match_later(task, error, args, kwargs):
    """match_waitlist's fallback when the broker is down: the minute's sweep (match_waitlists) matches instead."""
    logger.warning("could not hand waitlist matching to a worker (%s); the sweep will do it", error)


@shared_task(name="reservations.tasks.match_waitlist", ignore_result=True, broker_down=_match_later)
def match_waitlist(server_id=None, room_id=None):
    """After a booking change or a waitlist change: offer what is free on one server or room to the first in line."""
    from .services import waitlist

    return len(waitlist.match(server_id=server_id, room_id=room_id))


@shared_task(name="reservations.tasks.match_waitlists", ignore_result=True)
def match_waitlists():
    """Beat, every minute: expire offers, lapse old entries, and match every server and room anyone waits for."""
    from .services import waitlist

    return waitlist.match_all()


@shared_task(name="reservations.tasks.expire_pending_bookings")
def expire_pending_bookings():
    """Beat, every minute: pending bookings whose start came without a decision are cancelled (each once)."""
    from . import services

    expired = services.expire_pending_bookings()
    if expired:
        logger.info("%d booking(s) awaiting approval expired at their start", expired)
    return expired
