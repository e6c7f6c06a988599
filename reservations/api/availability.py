"""Who holds which unit in a window: every active unit in scope, free ones with an empty list.

A constant number of queries whatever the lab's size: one for the units, one for the active
allocations overlapping the window (unit and booking ids only), one for the bookings holding
units in the window with their holders, plus one to look up each server or room the request
names, plus one for the shares on servers that declare pooled CPU cores or memory. Rows are values, not model instances, and the answer is built from plain dicts: a busy
week over 400 GPUs holds thousands of allocations.
"""
from datetime import UTC, datetime

from django.db.models import CharField, Q
from django.db.models.functions import Cast
from rest_framework.exceptions import ValidationError

from ..models import Allocation, Booking, Room, Server, Unit, display_name_of
from ..parsing import describe_target
from ..services.capacity import peak_load
from .times import utc_iso


def availability(start, end, *, server=None, room=None):
    """{"start", "end", "units": [{"unit", "kind", "server", "device", "room", "busy": [...]}]} for [start, end)."""
    server_id = _id_of(Server, server, "server") if server is not None else None
    room_id = _id_of(Room, room, "room") if room is not None else None
    units = _units(_scope(server_id, room_id))
    busy = _busy_by_unit(start, end, _scope(server_id, room_id, prefix="unit__"), _scope(server_id, room_id))
    for unit_id, entry in units:
        entry["busy"] = busy.get(unit_id, [])
    _add_pools(start, end, units)
    return {"start": utc_iso(start), "end": utc_iso(end), "units": [entry for _, entry in units]}


def _id_of(model, name, field):
    found = model.objects.filter(name__iexact=name.strip()).values_list("pk", flat=True).first()
    if found is None:
        raise ValidationError({field: [f"There is no {field} '{name.strip()}'."]})
    return found


def _scope(server_id, room_id, prefix=""):
    """A Q for the units (or, through `prefix`, the allocations) of a server and/or a room; None for all."""
    if server_id is None and room_id is None:
        return None
    scope = Q(pk__in=[])
    if server_id is not None:
        scope |= Q(**{f"{prefix}server_id": server_id})
    if room_id is not None:
        scope |= Q(**{f"{prefix}room_id": room_id})
    return scope


def _units(scope):
    """[(unit id, entry)]: each server, then its GPUs by index; then the rooms by name."""
    active = (
        Q(kind=Unit.Kind.GPU, server__active=True, device__active=True)
        | Q(kind=Unit.Kind.SERVER, server__active=True)
        | Q(kind=Unit.Kind.ROOM, room__active=True)
    )
    rows = Unit.objects.filter(active)
    if scope is not None:
        rows = rows.filter(scope)
    rows = rows.values_list("pk", "kind", "server__name", "device__index", "room__name", "server_id", "server__cpu_cores", "server__memory_gib")
    units = []
    for unit_id, kind, server, index, room, server_id, cores, memory in rows:
        if kind == Unit.Kind.GPU:
            order, label = (0, server, 1, index), describe_target(server, [index])
        elif kind == Unit.Kind.SERVER:
            order, label = (0, server, 0, 0), server
        else:
            order, label = (1, room.lower(), 0, 0), describe_target(room=room)
        entry = {"unit": label, "kind": kind, "server": server, "device": index, "room": room, "busy": []}
        if kind == Unit.Kind.SERVER and (cores is not None or memory is not None):
            # Filled in by _add_pools; the capacities ride along until then.
            entry["pool"] = {"server_id": server_id, "cpu_cores": cores, "memory_gib": memory}
        units.append((order, unit_id, entry))
    units.sort(key=lambda item: item[0])
    return [(unit_id, entry) for _, unit_id, entry in units]


def _busy_by_unit(start, end, allocation_scope, booking_scope):
    """{unit id: [busy entry by start]} from the bookings holding units during [start, end)."""
    held = Allocation.objects.active().overlapping(start, end)
    if allocation_scope is not None:
        held = held.filter(allocation_scope)
    units_of = {}
    for unit_id, booking_id in held.values_list("unit_id", "booking_id"):
        units_of.setdefault(booking_id, []).append(unit_id)
    if not units_of:
        return {}
    # The bookings found by their own window, not joined to the allocations: for that join
    # PostgreSQL would hash the whole booking table (a year of history); this way it reads each
    # member's bookings ending after the start (index booking_user_end). A booking holds its
    # units exactly while it is confirmed or released, over its own interval, so these are the
    # bookings of the allocations above. Times come as text: Django's loader of PostgreSQL
    # timestamps is pure Python (some 13 µs a value), and a busy week holds thousands of them.
    bookings = Booking.objects.holding().overlapping(start, end)
    if booking_scope is not None:
        bookings = bookings.filter(booking_scope)
    rows = (
        bookings.order_by("start", "pk")
        .annotate(start_text=Cast("start", CharField()), end_text=Cast("end", CharField()))
        .values_list(
            "pk", "start_text", "end_text", "purpose", "user_id", "user__username", "user__first_name", "user__last_name",
            "user__profile__display_name", "status",
        )
    )
    # A booking holding several units (a whole server: the server and each GPU) is one entry, shared.
    names, times, busy = {}, {}, {}
    for booking_id, start_text, end_text, purpose, user_id, username, first, last, display, status in rows:
        unit_ids = units_of.get(booking_id)
        if unit_ids is None:
            continue
        name = names.get(user_id)
        if name is None:
            name = names[user_id] = display_name_of(display, first, last, username)
        entry = {
            "booking": booking_id, "user": username, "user_name": name,
            "start": _utc_text(start_text, times), "end": _utc_text(end_text, times), "purpose": purpose,
        }
        if status == Booking.Status.PENDING:
            entry["pending"] = True  # awaiting approval (only then, so confirmed entries keep their shape)
        for unit_id in unit_ids:
            busy.setdefault(unit_id, []).append(entry)
    return busy


def _utc_text(text, seen):
    """A stored time as the database writes it as text ('2026-11-23 10:30:00+00' on PostgreSQL,
    in UTC without an offset on SQLite), as the API writes it; `seen` remembers the ones done."""
    written = seen.get(text)
    if written is None:
        moment = datetime.fromisoformat(text)
        written = seen[text] = utc_iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return written


def _add_pools(start, end, units):
    """For each server declaring pooled capacities: how much of each is booked at most in the window, and so free
    throughout it ({"capacity", "booked", "free"}, null where it declares none); one query for all servers."""
    pools = {entry["pool"]["server_id"]: entry for _, entry in units if "pool" in entry}
    if not pools:
        return
    rows = (
        Booking.objects.holding().overlapping(start, end).filter(server_id__in=list(pools))
        .filter(Q(cpu_cores__gt=0) | Q(memory_gib__gt=0) | Q(whole_server=True))
        .values_list("server_id", "start", "end", "whole_server", "cpu_cores", "memory_gib")
    )
    shares = {}
    for server_id, a, b, whole, cores, memory in rows:
        shares.setdefault(server_id, []).append((a, b, whole, cores, memory))
    for server_id, entry in pools.items():
        declared = entry["pool"]
        pool = {}
        for field, position in (("cpu_cores", 3), ("memory_gib", 4)):
            capacity = declared[field]
            if capacity is None:
                pool[field] = None
                continue
            # A whole-server booking takes all of the pool.
            intervals = [(row[0], row[1], capacity if row[2] else row[position]) for row in shares.get(server_id, [])]
            booked, _, _ = peak_load(intervals, start, end)
            pool[field] = {"capacity": capacity, "booked": booked, "free": max(capacity - booked, 0)}
        entry["pool"] = pool
