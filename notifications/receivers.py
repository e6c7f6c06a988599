"""Where events come from: the booking services' signal and new monitoring alerts.

Both run inside the transaction of the change, so the outbox rows commit (or roll back) with it.
"""
from datetime import timedelta

from django.db.models import Prefetch

from reservations.models import Allocation, Booking

from .messages import Occasion
from .outbox import notify

# "Someone booked right after you": a booking starting at most this long after yours ends.
FOLLOW_GAP = timedelta(minutes=15)

ALERT_EVENTS = {"idle_booking", "unbooked_use", "host_stale"}


def _loaded(booking_id):
    """The booking with what every message shows (owner, units), in two queries."""
    allocations = Prefetch("allocations", queryset=Allocation.objects.select_related("unit__device"))
    return Booking.objects.select_related("user__profile", "server", "room").prefetch_related(allocations).get(pk=booking_id)


def on_booking_changed(sender, booking, event, by, before=None, **kwargs):
    booking = _loaded(booking.pk)
    if event == "changed":
        # One message per change: the key holds the times it moved to.
        key = f"changed:b{booking.pk}@{booking.start:%Y%m%dT%H%M%S}-{booking.end:%Y%m%dT%H%M%S}"
        notify(Occasion(event, booking=booking, by=by, before=before), key=key)
    else:
        notify(Occasion(event, booking=booking, by=by))
    if event == "created":
        _tell_who_is_followed(booking)


def _tell_who_is_followed(booking):
    """Tell the owners of bookings on the same units that end right before this one starts."""
    unit_ids = [allocation.unit_id for allocation in booking.allocations.all()]
    before_ids = (
        Allocation.objects.filter(unit_id__in=unit_ids, active=True, end__lte=booking.start, end__gte=booking.start - FOLLOW_GAP)
        .exclude(booking__user_id=booking.user_id)
        .values_list("booking_id", flat=True)
        .distinct()
    )
    for previous_id in list(before_ids):
        previous = _loaded(previous_id)
        notify(Occasion("followed", booking=previous, next_booking=booking), key=f"followed:b{previous.pk}:by{booking.pk}")


def on_alert_saved(sender, instance, created, raw=False, **kwargs):
    if created and not raw and instance.kind in ALERT_EVENTS:
        booking = _loaded(instance.booking_id) if instance.booking_id else None
        notify(Occasion(instance.kind, alert=instance, booking=booking), key=f"{instance.kind}:a{instance.pk}")
