"""Where events come from: the booking services' signal and new monitoring alerts.

Both run inside the transaction of the change and write one outbox event row each (one INSERT:
no rendering, no reading), so it commits (or rolls back) with the change. The messages are
rendered and written when the event is expanded, after commit (see outbox.expand).
"""
from reservations.signals import is_in_series

from . import outbox
from .events import Event

ALERT_EVENTS = {"idle_booking", "unbooked_use", "host_stale"}

TIME_IN_KEY = "%Y%m%dT%H%M%S"


def on_booking_changed(sender, booking, event, by, before=None, **kwargs):
    if is_in_series():
        return  # one date of a series: the series' own event (on_series_changed) tells of all its dates
    key, context = f"{event}:b{booking.pk}", {}
    if event == "changed":
        # One message per change: the key holds the times it moved to; the event keeps both, for
        # a later change must not rewrite what this one's message says.
        key = f"changed:b{booking.pk}@{booking.start:{TIME_IN_KEY}}-{booking.end:{TIME_IN_KEY}}"
        context["after"] = [booking.start.isoformat(), booking.end.isoformat()]
        if before:
            context["before"] = [before[0].isoformat(), before[1].isoformat()]
    outbox.record(event, key=key, booking_id=booking.pk, by_id=getattr(by, "pk", None), context=context)
    if event == "created" and booking.status == "pending":
        # Staff are asked to decide; the member's own "created" message says it awaits approval.
        outbox.record("approval_requested", key=f"approval_requested:b{booking.pk}", booking_id=booking.pk, by_id=getattr(by, "pk", None))


def on_alert_saved(sender, instance, created, raw=False, **kwargs):
    if created and not raw and instance.kind in ALERT_EVENTS:
        outbox.record(instance.kind, key=f"{instance.kind}:a{instance.pk}", alert_id=instance.pk, booking_id=instance.booking_id)


def on_waitlist_told(sender, user, **kwargs):
    """How `user`, joining a waitlist, will hear of their turn: (channel names, words); see outbox.how_told."""
    return outbox.how_told(user, Event.WAITLIST_OFFER)


def on_waitlist_changed(sender, entry, event, why="", **kwargs):
    # One message per offer (its number is in the key) and one when the entry lapses.
    name = {"offered": "waitlist_offer", "lapsed": "waitlist_lapsed"}.get(event)
    if name is not None:
        key = f"{name}:w{entry.pk}" + (f":{entry.offers}" if event == "offered" else "")
        outbox.record(name, key=key, context={"waitlist_entry": entry.pk, "why": why})


def on_series_changed(sender, series, event, by, bookings, skipped=(), reason="", **kwargs):
    """One event for a whole series, about its first booking concerned: created, the rest cancelled,
    or its pending dates approved or declined together (the member's "approved" / "declined" message,
    with the series' dates)."""
    def pairs(items):
        return [[item.start.isoformat(), item.end.isoformat()] for item in items]

    by_id = getattr(by, "pk", None)
    context = {"series": series.pk, "rule": series.describe(), "dates": pairs(bookings)}
    if event in ("series_approved", "series_declined"):
        name = "approved" if event == "series_approved" else "declined"
        context["reason"] = reason
        outbox.record(name, key=f"{name}:s{series.pk}:b{bookings[0].pk}", booking_id=bookings[0].pk, by_id=by_id, context=context)
        return
    if event == "series_created":
        context["skipped"] = [[*pair, refusal.reason] for pair, refusal in zip(pairs(skipped), skipped)]
    else:
        context["running"] = pairs(skipped)
    outbox.record(event, key=f"{event}:s{series.pk}", booking_id=bookings[0].pk, by_id=by_id, context=context)
    pending = [booking for booking in bookings if booking.status == "pending"] if event == "series_created" else []
    if pending:
        # Staff are asked once for the series: they decide all its dates together, or each alone.
        outbox.record(
            "approval_requested", key=f"approval_requested:s{series.pk}", booking_id=pending[0].pk, by_id=by_id,
            context={"series": series.pk, "rule": context["rule"], "dates": pairs(pending)},
        )
