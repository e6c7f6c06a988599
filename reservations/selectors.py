"""Reads that several surfaces share."""
from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from .models import Allocation, Booking, Room, Server

LOOKAHEAD = timedelta(days=7)


@dataclass
class UnitStatus:
    """A unit with the booking holding it now and the next one, if any within the lookahead."""

    label: str
    current: object = None
    next: object = None

    @property
    def free(self):
        return self.current is None


@dataclass
class ServerStatus:
    server: Server
    whole: UnitStatus
    gpus: list = field(default_factory=list)


def now_board(now=None):
    """Every active server (its GPUs and itself) and room, with who holds each now and next."""
    now = now or timezone.now()
    servers = list(Server.objects.filter(active=True).prefetch_related("devices"))
    rooms = list(Room.objects.filter(active=True))
    holdings = _holdings(now)

    def status(unit_key, label):
        current, upcoming = holdings.get(unit_key, (None, None))
        return UnitStatus(label=label, current=current, next=upcoming)

    board = []
    for server in servers:
        entry = ServerStatus(server=server, whole=status(("server", server.pk), server.name))
        entry.gpus = [status(("gpu", d.pk), str(d.index)) for d in server.devices.all() if d.active]
        board.append(entry)
    return board, [status(("room", room.pk), room.name) for room in rooms]


def _holdings(now):
    """{(kind, object id): (current booking, next booking)} from one query."""
    rows = (
        Allocation.objects.filter(active=True, end__gt=now, start__lt=now + LOOKAHEAD)
        .select_related("booking__user__profile", "unit")
        .order_by("start")
    )
    holdings = {}
    for row in rows:
        unit = row.unit
        key = (unit.kind, unit.device_id or unit.room_id or unit.server_id)
        current, upcoming = holdings.get(key, (None, None))
        if row.start <= now:
            current = current or row.booking
        else:
            upcoming = upcoming or row.booking
        holdings[key] = (current, upcoming)
    return holdings


def member_bookings(user, now=None):
    """A member's bookings: running and upcoming (lists, soonest first) and past (a queryset, newest first)."""
    now = now or timezone.now()
    bookings = (
        Booking.objects.filter(user=user)
        .select_related("server", "room", "user__profile")
        .prefetch_related("allocations__unit__device")
    )
    current = list(bookings.filter(status=Booking.Status.CONFIRMED, end__gt=now).order_by("start"))
    running = [b for b in current if b.start <= now]
    upcoming = [b for b in current if b.start > now]
    past = bookings.exclude(status=Booking.Status.CONFIRMED, end__gt=now).order_by("-start")
    return running, upcoming, past


def nearest_free_start(units, start, length, *, horizon=timedelta(days=14)):
    """The earliest t >= start at which [t, t + length) holds none of `units`; None if none within the horizon."""
    busy = (
        Allocation.objects.filter(unit__in=units, active=True, end__gt=start, start__lt=start + horizon + length)
        .order_by("start")
        .values_list("start", "end")
    )
    return _first_gap(list(busy), start, length, horizon)


def _first_gap(busy, start, length, horizon):
    """The earliest t in [start, start + horizon] with [t, t + length) clear of `busy`, (start, end) pairs sorted by start."""
    candidate = start
    for busy_start, busy_end in busy:
        if busy_start >= candidate + length:
            break  # the gap before this interval fits, and every later interval starts later still
        if busy_end > candidate:
            candidate = busy_end
            if candidate > start + horizon:
                return None
    return candidate
