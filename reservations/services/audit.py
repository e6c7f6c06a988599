"""The audit log's one writer (log_action), and the surface an action comes from.

Each booking service calls log_action inside its own transaction, after its write: the entry is
committed with the change or rolled back with it, so a refused change leaves none (the way pretix's
log_action and Zulip's RealmAuditLog are written). Creation takes its surface from the booking's
source; the other actions from the surface the request or task acts through, set once by each
surface's entry point with acting_via (the web, API and admin by URL in reservations.middleware,
Slack by its handlers, the calendar import by its sync); whatever sets none is the system (Celery
tasks, beat, management commands).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from labres.db import insert

from ..models import Booking, BookingAuditEntry, BookingSeries
from ..models.audit import AUDITED_FIELDS

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Action = BookingAuditEntry.Action
Surface = BookingAuditEntry.Surface

_surface: ContextVar[str] = ContextVar("labres_audit_surface", default=Surface.SYSTEM)


@contextmanager
def acting_via(surface: str) -> Iterator[None]:
    """Log the actions taken inside it (a with block, or a decorated function) as made via `surface`."""
    token = _surface.set(Surface(surface))
    try:
        yield
    finally:
        _surface.reset(token)


def current_surface() -> str:
    """The surface actions are logged as made via here: the innermost acting_via, else the system."""
    return _surface.get()


def snapshot(booking: Booking) -> dict[str, Any]:
    """The booking's audited fields as they are now: log_action's `before`, taken before a change."""
    return {name: getattr(booking, name) for name in AUDITED_FIELDS}


def log_action(
    booking: Booking, action: str, *, by: User | None, surface: str | None = None, before: dict[str, Any] | None = None,
    changes: dict[str, list[Any]] | None = None, note: str = "", at: datetime | None = None,
) -> BookingAuditEntry:
    """Write one audit entry for `action` on `booking`, inside the caller's transaction.

    `changes` ({field: [before, after]}) defaults to what differs between `before` (a snapshot) and
    the booking now; without `before`, every audited field the booking has (a creation). A change
    that only moves the end later is an extension. `by` None is the system; `surface` defaults to
    current_surface().
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("log_action writes inside the transaction of the change it logs.")
    if changes is None:
        changes = _differences(before, snapshot(booking))
    if action == Action.CHANGED and set(changes) == {"end"} and changes["end"][1] > changes["end"][0]:
        action = Action.EXTENDED
    entry = BookingAuditEntry(
        booking=booking, series_id=booking.series_id, action=action, actor=by, surface=surface or current_surface(),
        at=at or timezone.now(), changes={name: [_plain(value) for value in pair] for name, pair in changes.items()}, note=note,
    )
    insert([entry])
    return entry


def attach_series(bookings: Iterable[Booking], series: BookingSeries) -> None:
    """The entries of bookings that just joined a series (create_series books each date first) name it too."""
    BookingAuditEntry.objects.filter(booking__in=bookings).update(series=series)


def _differences(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, list[Any]]:
    if before is None:  # created: what it was made with
        return {name: [None, value] for name, value in after.items() if value not in ("", None)}
    return {name: [before[name], after[name]] for name in AUDITED_FIELDS if before[name] != after[name]}


def _plain(value: object) -> str | None:
    """A value as JSON keeps it: times as ISO 8601 in UTC (to the microsecond), choices as their text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value if value is None else str(value)
