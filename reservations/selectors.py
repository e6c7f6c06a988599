"""Reads that several surfaces share."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db.models import F, Prefetch, Q, QuerySet, Window, prefetch_related_objects
from django.db.models.functions import RowNumber
from django.utils import timezone

from .models import Allocation, Booking, Device, Room, Server, Unit, display_name_of

LOOKAHEAD = timedelta(days=7)


@dataclass
class UnitStatus:
    """A unit with the booking holding it now and the next one, if any within the lookahead."""

    label: str
    current: Holding | None = None
    next: Holding | None = None

    @property
    def free(self) -> bool:
        return self.current is None


@dataclass
class BoardGroup:
    """A card on the Now page: a server's GPUs (or the server itself, without GPUs), or the rooms."""

    title: str
    subtitle: str = ""
    units: list[UnitStatus] = field(default_factory=list)
    server: Server | None = None  # the Server, for a server's card (its pooled capacities, if any)
    pools: list[PoolNow] = field(default_factory=list)  # [PoolNow] for each capacity the server declares


@dataclass(frozen=True)
class PoolNow:
    """How much of a server's pooled capacity is booked at this moment: 'CPU cores: 12 of 128 booked'."""

    name: str
    unit: str
    capacity: int
    booked: int

    @property
    def free(self) -> int:
        return max(self.capacity - self.booked, 0)


def now_board(now: datetime | None = None) -> list[BoardGroup]:
    """Every active server's GPUs (a GPU-less server as itself), then the rooms, with who holds each now and next."""
    now = now or timezone.now()
    servers = Server.objects.filter(active=True).prefetch_related(Prefetch("devices", Device.objects.filter(active=True)))
    holdings = unit_holdings(now)

    def status(key: tuple[str, int], label: str) -> UnitStatus:
        current, upcoming = holdings.get(key, (None, None))
        return UnitStatus(label=label, current=current, next=upcoming)

    groups: list[BoardGroup] = []
    for server in servers:
        gpus = [status(("gpu", d.pk), f"GPU {d.index}") for d in server.devices.all()]
        groups.append(BoardGroup(server.name, server.location, gpus or [status(("server", server.pk), server.name)], server=server))
    _add_pools_now(groups, now)
    rooms = [status(("room", room.pk), room.name) for room in Room.objects.filter(active=True)]
    if rooms:
        groups.append(BoardGroup("Rooms", units=rooms))
    return groups


def _add_pools_now(groups: list[BoardGroup], now: datetime) -> None:
    """Each pooled server's booked share of its CPU cores and memory at `now`, from one query for all of them."""
    pooled = {
        group.server.pk: group
        for group in groups
        if group.server is not None and (group.server.cpu_cores is not None or group.server.memory_gib is not None)
    }
    if not pooled:
        return
    booked = {server_id: {"cpu_cores": 0, "memory_gib": 0} for server_id in pooled}
    rows = (
        Booking.objects.holding().at(now).filter(server_id__in=list(pooled))
        .exclude(status=Booking.Status.PENDING)  # a pending booking whose start came is expiring: it holds nothing now
        .filter(Q(cpu_cores__gt=0) | Q(memory_gib__gt=0) | Q(whole_server=True))
        .values_list("server_id", "whole_server", "cpu_cores", "memory_gib")
    )
    for server_id, whole, cores, memory in rows:
        server = pooled[server_id].server
        assert server is not None  # pooled holds server cards only
        booked[server_id]["cpu_cores"] += (server.cpu_cores or 0) if whole else cores
        booked[server_id]["memory_gib"] += (server.memory_gib or 0) if whole else memory
    for server_id, group in pooled.items():
        server = group.server
        assert server is not None
        group.pools = [
            PoolNow(name, unit, capacity, min(booked[server_id][field], capacity))
            for field, name, unit, capacity in (("cpu_cores", "CPU cores", "", server.cpu_cores), ("memory_gib", "Memory", " GiB", server.memory_gib))
            if capacity is not None
        ]


@dataclass(frozen=True)
class Holding:
    """Who holds a unit from when to when, and why: the part of a booking the Now page shows."""

    booking_id: int
    user_id: int
    name: str
    start: datetime
    end: datetime
    purpose: str
    username: str = ""


def unit_holdings(now: datetime) -> dict[tuple[str, int], tuple[Holding | None, Holding | None]]:
    """{(kind, object id): (current holding, next holding)} from one query: each unit's first two allocations."""
    rows = (
        Allocation.objects.active().overlapping(now, now + LOOKAHEAD)
        # A pending booking whose start came undecided is expiring (within a minute): it holds nothing now.
        .exclude(booking__status=Booking.Status.PENDING, start__lte=now)
        .annotate(rank=Window(RowNumber(), partition_by=[F("unit_id")], order_by=F("start").asc()))
        .filter(rank__lte=2)
        .values_list(
            "unit__kind", "unit__device_id", "unit__room_id", "unit__server_id",
            "booking_id", "booking__user_id", "booking__user__profile__display_name", "booking__user__first_name",
            "booking__user__last_name", "booking__user__username", "start", "end", "booking__purpose",
        )
    )
    holdings: dict[tuple[str, int], tuple[Holding | None, Holding | None]] = {}
    for kind, device_id, room_id, server_id, booking_id, user_id, display, first, last, username, start, end, purpose in rows:
        holding = Holding(booking_id, user_id, display_name_of(display, first, last, username), start, end, purpose, username)
        key = (kind, device_id or room_id or server_id)
        current, upcoming = holdings.get(key, (None, None))
        if start <= now:
            current = holding
        elif upcoming is None:
            upcoming = holding
        holdings[key] = (current, upcoming)
    return holdings


def member_bookings(
    user: User, now: datetime | None = None, *, upcoming_limit: int | None = None
) -> tuple[list[Booking], list[Booking], QuerySet[Booking]]:
    """A member's bookings: running and upcoming (lists, soonest first) and past (a queryset, newest first)."""
    now = now or timezone.now()
    bookings = Booking.objects.filter(user=user).select_related("server", "room", "user__profile", "series")
    current = bookings.filter(status__in=Booking.LIVE, end__gt=now).order_by("start")  # pending ones too
    running = list(current.filter(start__lte=now))
    upcoming = list(current.filter(start__gt=now)[:upcoming_limit])
    prefetch_related_objects(running + upcoming, "allocations__unit__device")
    past = bookings.exclude(status__in=Booking.LIVE, end__gt=now).prefetch_related("allocations__unit__device").order_by("-start")
    return running, upcoming, past


def awaiting_approval(now: datetime | None = None, *, limit: int = 20) -> tuple[list[Booking], int]:
    """(the first `limit` bookings awaiting a staff decision, soonest first; how many there are), in three queries."""
    now = now or timezone.now()
    pending = Booking.objects.filter(status=Booking.Status.PENDING, end__gt=now).select_related("server", "room", "user__profile")
    shown = list(pending.order_by("start", "pk")[:limit])
    prefetch_related_objects(shown, "allocations__unit__device")
    return shown, (len(shown) if len(shown) < limit else pending.count())


def nearest_free_start(
    units: Iterable[Unit], start: datetime, length: timedelta, *, horizon: timedelta = timedelta(days=14)
) -> datetime | None:
    """The earliest t >= start at which [t, t + length) holds none of `units`; None if none within the horizon."""
    busy = (
        Allocation.objects.active().overlapping(start, start + horizon + length).filter(unit__in=units)
        .order_by("start")
        .values_list("start", "end")
    )
    return _first_gap(list(busy), start, length, horizon)


def _first_gap(busy: list[tuple[datetime, datetime]], start: datetime, length: timedelta, horizon: timedelta) -> datetime | None:
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


def pool_use(servers: Iterable[Server], moment: datetime) -> dict[int, tuple[int, ...]]:
    """{server id: (CPU cores, GiB)} booked at `moment` on those of `servers` that declare pooled capacities
    (a whole-server booking takes all); one query for all of them, none when no server pools anything."""
    pooled = {server.pk: server for server in servers if server.cpu_cores is not None or server.memory_gib is not None}
    if not pooled:
        return {}
    use = {server_id: [0, 0] for server_id in pooled}
    rows = (
        Booking.objects.holding().at(moment).filter(server_id__in=list(pooled))
        .filter(Q(cpu_cores__gt=0) | Q(memory_gib__gt=0) | Q(whole_server=True))
        .values_list("server_id", "whole_server", "cpu_cores", "memory_gib")
    )
    for server_id, whole, cores, memory in rows:
        server = pooled[server_id]
        use[server_id][0] += (server.cpu_cores or 0) if whole else cores
        use[server_id][1] += (server.memory_gib or 0) if whole else memory
    return {server_id: tuple(amounts) for server_id, amounts in use.items()}


def gpu_holders(server: Server, start: datetime, end: datetime) -> dict[int, Holding]:
    """{GPU index: Holding} for the GPUs of `server` held during [start, end): the first holder of each, one query."""
    rows = (
        Allocation.objects.active().overlapping(start, end).filter(unit__server=server, unit__kind=Unit.Kind.GPU)
        .order_by("-start")  # the first holder of a GPU is written last, and wins
        .values_list(
            "unit__device__index", "booking_id", "booking__user_id", "booking__user__profile__display_name",
            "booking__user__first_name", "booking__user__last_name", "booking__user__username", "start", "end", "booking__purpose",
        )
    )
    return {
        index: Holding(booking_id, user_id, display_name_of(display, first, last, username), a, b, purpose, username)
        for index, booking_id, user_id, display, first, last, username, a, b, purpose in rows
    }


def free_gpus(
    start: datetime, end: datetime, *, model: str | None = None, servers: Iterable[Server | int] | None = None
) -> dict[Server, list[int]]:
    """{server: [indices]} of the active GPUs free throughout [start, end) on active servers (of `model`, of `servers`); two queries."""
    devices = Device.objects.filter(active=True, server__active=True).select_related("server").order_by("server__name", "index")
    if model is not None:
        devices = devices.filter(model=model)
    if servers is not None:
        devices = devices.filter(server__in=servers)
    listed = list(devices)
    held = set(
        Allocation.objects.active().overlapping(start, end)
        .filter(unit__device__in=[device.pk for device in listed]).values_list("unit__device_id", flat=True)
    )
    found: dict[Server, list[int]] = {}
    for device in listed:
        if device.pk not in held:
            found.setdefault(device.server, []).append(device.index)
    return found
