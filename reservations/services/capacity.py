"""Pooled capacities: a server's CPU cores and memory, shared by bookings that each ask for an amount.

At no instant may the amounts booked on a server add up to more than it declares; a
whole-server booking takes all of it. The services check this inside the booking's transaction
after locking the server's own unit (locking.lock), so two requests that each fit
alone but not together cannot both pass.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from .. import queries
from ..errors import BookingError, CapacityExceeded
from ..parsing import format_span

if TYPE_CHECKING:
    from ..models import Booking, Server
    from ..queries import Share

LOOK_AHEAD = timedelta(days=30)  # how far "enough frees up at ..." looks

Moment = TypeVar("Moment", datetime, float)  # peak_load's times: datetimes here, epoch seconds for fair use


RESOURCES: tuple[tuple[str, Callable[[int], str]], ...] = (
    # (booking and server field, how an amount is written)
    ("cpu_cores", lambda n: f"{n} CPU core{'s' if n != 1 else ''}"),
    ("memory_gib", lambda n: f"{n} GiB of memory"),
)
NAMES = {"cpu_cores": "CPU cores", "memory_gib": "memory"}


def check(
    server: Server, *, cpu_cores: int | None = 0, memory_gib: int | None = 0, whole: bool = False, start: datetime, end: datetime,
    exclude: Booking | None = None,
) -> None:
    """Raise BookingError if the server declares no such capacity, CapacityExceeded if not enough is free."""
    asked = {"cpu_cores": cpu_cores or 0, "memory_gib": memory_gib or 0}
    for field, write in RESOURCES:
        if asked[field] and getattr(server, field) is None:
            raise BookingError(
                f"Server {server.name} has no pooled {NAMES[field]} to book; book its GPUs or the whole server.", field=field,
            )
        capacity = getattr(server, field)
        if capacity is not None and asked[field] > capacity:
            raise CapacityExceeded(f"Server {server.name} has {write(capacity)} in all; you asked for {asked[field]}.", field=field)
    pooled = [field for field, _ in RESOURCES if getattr(server, field) is not None and (whole or asked[field])]
    if not pooled:
        return
    others = list(_others(server, start, end, exclude))
    for field, write in RESOURCES:
        if field not in pooled:
            continue
        capacity = getattr(server, field)
        wanted = capacity if whole else asked[field]
        intervals = [(b.start, b.end, capacity if b.whole_server else getattr(b, field)) for b in others]
        peak, peak_from, peak_to = peak_load(intervals, start, end)
        if peak + wanted > capacity:
            free = capacity - peak
            # Only a refusal looks further ahead, for when enough frees up.
            ahead = [(b.start, b.end, capacity if b.whole_server else getattr(b, field)) for b in _others(server, start, end + LOOK_AHEAD, exclude)]
            later = _enough_from(ahead, capacity, wanted, start, end - start)
            when = f" Enough is free {format_span(later, later + (end - start), sentence=True)}." if later else ""
            raise CapacityExceeded(
                f"Server {server.name} has {write(capacity)}; {peak} {'is' if peak == 1 else 'are'} booked "
                f"{format_span(peak_from, peak_to, sentence=True)}, so {free} {'is' if free == 1 else 'are'} free then and you asked for "
                f"{'all of them (the whole server)' if whole else wanted}.{when}",
                field=field, free_from=later,
            )


def _others(server: Server, since: datetime, until: datetime, exclude: Booking | None) -> list[Share]:
    """Bookings of the server that take some of its capacity during [since, until): Share rows."""
    return queries.server_shares(server, since, until, exclude)


def peak_load(intervals: Iterable[tuple[Moment, Moment, int]], start: Moment, end: Moment) -> tuple[int, Moment, Moment]:
    """The largest sum of amounts overlapping one instant of [start, end), and the stretch it lasts: (sum, from, to).

    `intervals` are (start, end, amount); intervals are half-open, so one ending when another starts never adds up.
    """
    events = []
    for a, b, amount in intervals:
        a, b = max(a, start), min(b, end)
        if a < b and amount:
            events += [(a, amount), (b, -amount)]
    events.sort(key=lambda event: (event[0], event[1]))  # at one instant, ends (negative) before starts
    load = peak = 0
    peak_from = peak_to = start
    for index, (moment, step) in enumerate(events):
        load += step
        if load > peak:
            peak, peak_from = load, moment
            peak_to = next((m for m, _ in events[index + 1:]), end)
    return peak, peak_from, peak_to


def _enough_from(
    intervals: list[tuple[datetime, datetime, int]], capacity: int, wanted: int, start: datetime, length: timedelta,
) -> datetime | None:
    """The earliest start, from `start` on, where `wanted` fits for `length`: at `start` or when a booking ends."""
    candidates = sorted({b for _, b, _ in intervals if b > start})
    for moment in candidates:
        peak, _, _ = peak_load(intervals, moment, moment + length)
        if peak + wanted <= capacity:
            return moment
    return None
