"""Approval: a member's booking of a server or room with requires_approval starts PENDING.

It holds its units (Booking.HOLDING) and counts against limits and capacities until staff approve
it (CONFIRMED), decline it, or nobody decides by its start (both CANCELLED, its units free at once).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..errors import NotAllowed, NotPending
from ..models import Allocation, Booking
from ..signals import booking_changed
from .audit import Action, Surface, log_action, snapshot
from .validation import check_reason

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.db.models import QuerySet

    from ..models import BookingSeries
    from .targets import Target


def needs_approval(user: User, target: Target, source: str) -> bool:
    """Whether a new booking waits for staff: a member's, of a resource that requires approval.

    Staff's own bookings, bookings staff make in the admin and calendar imports (set up by staff)
    are confirmed directly.
    """
    if user.is_staff or source in (Booking.Source.ADMIN, Booking.Source.CALENDAR):
        return False
    place = target.server or target.room
    return bool(place is not None and place.requires_approval)


def approve_booking(booking: Booking, *, by: User, now: datetime | None = None) -> Booking:
    """Staff: confirm a booking awaiting approval; it keeps what it holds. Raises NotAllowed, NotPending."""
    now = now or timezone.now()
    with transaction.atomic():
        booking = _lock_for_decision(booking, by, now, verb="approve")
        was = snapshot(booking)
        booking.status = Booking.Status.CONFIRMED
        booking.decision, booking.decided_by, booking.decided_at = Booking.Decision.APPROVED, by, now
        booking.sequence += 1
        booking.save(update_fields=["status", "decision", "decided_by", "decided_at", "sequence", "updated_at"])
        log_action(booking, Action.APPROVED, by=by, before=was, at=now)
        booking_changed.send(Booking, booking=booking, event="approved", by=by)
    return booking


def decline_booking(booking: Booking, *, by: User, reason: str = "", now: datetime | None = None) -> Booking:
    """Staff: refuse a booking awaiting approval; it is cancelled and its units are free at once.

    `reason` is shown to the member. Raises NotAllowed, NotPending.
    """
    now = now or timezone.now()
    reason = check_reason(reason)
    with transaction.atomic():
        booking = _lock_for_decision(booking, by, now, verb="decline")
        was = snapshot(booking)
        booking.status = Booking.Status.CANCELLED
        booking.decision, booking.decided_by, booking.decided_at = Booking.Decision.DECLINED, by, now
        booking.decision_note = reason
        booking.sequence += 1
        booking.save(update_fields=["status", "decision", "decided_by", "decided_at", "decision_note", "sequence", "updated_at"])
        booking.allocations.update(active=False)
        log_action(booking, Action.DECLINED, by=by, before=was, note=reason, at=now)
        booking_changed.send(Booking, booking=booking, event="declined", by=by)
    return booking




def pending_dates(series: BookingSeries | int, now: datetime | None = None) -> QuerySet[Booking]:
    """The dates of a series (or of the series with this id) still awaiting approval, soonest first: a queryset."""
    return Booking.objects.filter(
        series_id=getattr(series, "pk", series), status=Booking.Status.PENDING, start__gt=now or timezone.now(),
    ).order_by("start", "pk")


def expire_pending_bookings(now: datetime | None = None) -> int:
    """Cancel the pending bookings whose start has come without a decision; returns how many.

    Each is claimed by a conditional UPDATE (still pending, started), so a second run, a second
    beat, or staff deciding at the same moment never make it expire twice or after a decision.
    """
    now = now or timezone.now()
    expired = 0
    due = Booking.objects.filter(status=Booking.Status.PENDING, start__lte=now).order_by("start", "pk")
    for booking_id in list(due.values_list("pk", flat=True)):
        with transaction.atomic():
            claimed = Booking.objects.filter(pk=booking_id, status=Booking.Status.PENDING, start__lte=now).update(
                status=Booking.Status.CANCELLED, decision=Booking.Decision.EXPIRED, decided_at=now, decided_by=None,
                sequence=F("sequence") + 1, updated_at=timezone.now(),
            )
            if not claimed:
                continue  # decided or expired by someone else meanwhile
            Allocation.objects.filter(booking_id=booking_id).update(active=False)
            booking = Booking.objects.select_related("user", "server", "room").get(pk=booking_id)
            log_action(booking, Action.EXPIRED, by=None, surface=Surface.SYSTEM, before={**snapshot(booking), "status": Booking.Status.PENDING, "decision": ""}, at=now)
            booking_changed.send(Booking, booking=booking, event="expired", by=None)
            expired += 1
    return expired


def _lock_for_decision(booking: Booking, by: User, now: datetime, *, verb: str) -> Booking:
    """Reload the booking under a row lock and check that `by` may decide it and it awaits a decision."""
    if not getattr(by, "is_staff", False):
        raise NotAllowed(f"Only staff can {verb} bookings.")
    booking = Booking.objects.select_for_update(of=("self",), no_key=True).select_related("user", "server", "room").get(pk=booking.pk)
    if booking.status != Booking.Status.PENDING:
        raise NotPending(f"Booking #{booking.pk} {_decided(booking)}; only a booking awaiting approval can be approved or declined.")
    if booking.start <= now:
        raise NotPending(f"Booking #{booking.pk} was not decided before its start and expires now; the member can book again.")
    return booking


def _decided(booking: Booking) -> str:
    """'was already approved by stella', 'was cancelled', ...: why there is nothing to decide."""
    from ..models import member_name

    # decided_by is read here, not joined under the row lock: PostgreSQL re-reads a locked row that
    # changed meanwhile without its outer-joined rows (they come back empty).
    who = f" by {member_name(booking.decided_by)}" if booking.decided_by_id else ""
    if booking.decision == Booking.Decision.APPROVED:
        return f"was already approved{who}"
    if booking.decision == Booking.Decision.DECLINED:
        return f"was already declined{who}"
    if booking.decision == Booking.Decision.EXPIRED:
        return "expired undecided at its start"
    return f"is {booking.get_status_display()}, not awaiting approval"
