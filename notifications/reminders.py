"""Reminders found by time: starts soon, ends soon (the expiry warning) and ended.

send_reminders() runs every minute and looks at a window, not at an instant, so a beat that
ran late still finds what it missed (within the window). Each reminder's key holds the
booking's time it is about, so a second run queues nothing, while a booking moved to a new
time gets a reminder for that time.
"""
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reservations.models import Booking
from reservations.parsing import parse_duration

from .messages import Occasion
from .outbox import notify

# An ended booking is reported if it ended at most this long ago (beat down for longer: skip).
ENDED_LOOKBACK = timedelta(hours=1)


def _bookings():
    return Booking.objects.filter(status=Booking.Status.CONFIRMED).select_related("user__profile", "server", "room").prefetch_related(
        "allocations__unit__device"
    )


def send_reminders(now=None):
    """Queue the reminders due at `now`; returns {event: number of bookings reminded}."""
    now = now or timezone.now()
    starts_lead = parse_duration(settings.NOTIFY_STARTS_SOON)
    ends_lead = parse_duration(settings.NOTIFY_ENDS_SOON)
    found = {
        # Booked within the lead time: the member knows already.
        "starts_soon": [b for b in _bookings().filter(start__gt=now, start__lte=now + starts_lead) if b.created_at <= b.start - starts_lead],
        # Shorter than twice the lead: a warning at its start would be noise.
        "ends_soon": [b for b in _bookings().at(now).filter(end__lte=now + ends_lead) if b.end - b.start >= 2 * ends_lead],
        "ended": list(_bookings().filter(end__lte=now, end__gt=now - ENDED_LOOKBACK)),
    }
    counts = {}
    for event, bookings in found.items():
        for booking in bookings:
            moment = booking.start if event == "starts_soon" else booking.end
            with transaction.atomic():
                notify(Occasion(event, booking=booking), key=f"{event}:b{booking.pk}@{moment:%Y%m%dT%H%M%S}")
        counts[event] = len(bookings)
    return counts
