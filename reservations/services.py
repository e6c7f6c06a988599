"""Every write to bookings goes through these functions, whatever the surface.

Each validates, then writes inside one transaction. Overlaps are refused by the database
(exclusion constraint on PostgreSQL, triggers plus IMMEDIATE transactions on SQLite); when
it refuses, find_conflicts says who holds what, from when to when, and why.
"""
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from labres.db import insert, prepared_cursor

from . import capacity, fairuse
from .errors import BookingConflict, BookingError, Busy, Conflict, NotAllowed, NotPending, Refusal, SeriesConflict, WrongState
from .models import Allocation, Booking, BookingSeries, Device, Profile, Room, Server, Unit
from .parsing import EARLIEST, ParseError, format_device_set, format_duration, parse_device_set, parse_duration
from .signals import booking_changed, series_changed
from .text import check_text

OVERLAP_SQLSTATE = "23P01"  # PostgreSQL exclusion_violation
SQLITE_OVERLAP_MARKER = "allocation_overlap"  # the message of the SQLite triggers
UNIT_LOCK_NAMESPACE = 0x6C616272  # 'labr': keeps our advisory lock keys apart from other users'
MEMBER_LOCK_NAMESPACE = 0x6C61626D  # 'labm': a member's bookings, for their fair-use limits (sorts below 'labr': see _lock)
UNIT_LOCK_TIMEOUT = "5s"  # a busy system answers "try again"; it does not hang


@dataclass(frozen=True)
class Target:
    """What a booking holds: some GPUs of a server, a whole server, or a room."""

    server: Server | None
    devices: tuple
    room: Room | None
    units: tuple

    @property
    def whole_server(self):
        return self.server is not None and not self.devices


def resolve_target(*, server=None, devices=None, room=None):
    """Turn a server (name or object) plus a device set, or a room, into the units to hold.

    `devices` is a device-set string ('0-2,5'), a list of indices, or None for the whole server.
    """
    if (server is None) == (room is None):
        raise BookingError("Book either a server (with or without GPUs) or a room, not both and not neither.", field="server")
    if room is not None:
        room = _get_room(room)
        return Target(server=None, devices=(), room=room, units=(room.unit,))
    indices = None if devices is None or devices == "" else _parse_indices(devices)
    units = _units_of(server, indices)
    return Target(
        server=units[0].server,
        devices=tuple(unit.device for unit in units if indices is not None),
        room=None,
        units=tuple(sorted(units, key=lambda unit: unit.pk)),
    )


def _units_of(server, indices):
    """The units a server booking holds: the asked GPUs, or for None the server and all its GPUs.

    One query when all is well; the precise complaint (unknown server, no such GPU, out of
    service) is worked out only when something is wrong. Written as SQL, each unit with its
    server and GPU (their other fields load if asked for): every booking runs it, and building
    it with the ORM cost more than running it.
    """
    connection = transaction.get_connection()
    q, alias = connection.ops.quote_name, connection.alias
    sql = (
        f"SELECT u.id, u.kind, u.device_id, s.id, s.name, s.active, s.cpu_cores, s.memory_gib, s.requires_approval,"
        f" d.{q('index')}, d.active FROM {Unit._meta.db_table} u JOIN {Server._meta.db_table} s ON s.id = u.server_id"
        f" LEFT JOIN {Device._meta.db_table} d ON d.id = u.device_id WHERE "
    )
    params = []
    if isinstance(server, Server):
        sql += "s.id = %s"
        params.append(server.pk)
    else:
        sql += "UPPER(s.name) = UPPER(%s)"
        params.append(str(server).strip())
    if indices is not None:
        sql += f" AND u.kind = %s AND d.{q('index')} IN ({', '.join(['%s'] * len(indices))})" if indices else " AND 1 = 0"
        params += [Unit.Kind.GPU, *indices] if indices else []
    with prepared_cursor(connection) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    found = None
    units = []
    for unit_id, kind, device_id, server_id, name, active, cpu_cores, memory_gib, requires_approval, index, device_active in rows:
        if found is None:
            found = Server.from_db(  # fields in the model's order, as from_db wants them
                alias, ["id", "name", "active", "cpu_cores", "memory_gib", "requires_approval"],
                [server_id, name, bool(active), cpu_cores, memory_gib, bool(requires_approval)],
            )
        unit = Unit.from_db(alias, ["id", "kind", "server_id", "device_id", "room_id"], [unit_id, kind, server_id, device_id, None])
        unit.server = found
        if device_id is not None:
            unit.device = Device.from_db(alias, ["id", "server_id", "index", "active"], [device_id, server_id, index, bool(device_active)])
            unit.device.server = found
        units.append(unit)
    well = bool(units) and found.active
    if indices is not None:
        well = well and len(units) == len(indices) and all(unit.device.active for unit in units)
    if not well:
        found = _get_server(server)  # raises for an unknown or retired server
        if indices is not None:
            _check_devices(found, indices)  # raises for a missing or retired GPU
        raise BookingError(f"Server {found.name} changed while booking; please try again.", field="server")
    return units


def create_booking(
    user, *, start, end, purpose="", server=None, devices=None, room=None, cpu_cores=0, memory_gib=0,
    source=Booking.Source.WEB, now=None, allow_past_start=False, by=None,
):
    """Book a server's GPUs, a whole server or a room for [start, end) for `user`; raises BookingError.

    `by` is who books (None: the member themself); staff booking for a member read refusals
    that name the member rather than say "you".

    cpu_cores and memory_gib ask for shares of the server's pooled capacities, with its GPUs or
    alone: a server booking that names no GPUs but asks for an amount holds only that amount.
    allow_past_start admits a booking that is already running (a calendar import of an event
    that began before it was fetched); every surface a member types into leaves it off.
    """
    now = now or timezone.now()
    ask = _ask(
        user, start=start, end=end, purpose=purpose, server=server, devices=devices, room=room, cpu_cores=cpu_cores,
        memory_gib=memory_gib, source=source, now=now, allow_past_start=allow_past_start,
    )
    target = ask.target
    try:
        # The database refuses an overlap (see the module docstring); there is no need to look
        # before writing. Only a refusal pays for finding out who holds the units.
        with transaction.atomic():
            group_id = _lock(
                units=[unit.pk for unit in target.units], member=user.pk, pooled_server=target.server if ask.pooled else None,
            )
            _check_limits(user, ask, now=now, group_id=group_id, by=by)
            booking = Booking(
                user=user,
                status=Booking.Status.PENDING if ask.pending else Booking.Status.CONFIRMED,
                purpose=ask.purpose,
                start=start,
                end=end,
                source=source,
                server=target.server,
                whole_server=ask.whole,
                room=target.room,
                cpu_cores=ask.cpu_cores,
                memory_gib=ask.memory_gib,
            )
            # The booking's rows, each one prepared INSERT (labres.db.insert): no model signals; the
            # services announce changes with booking_changed.
            insert([booking])
            insert([Allocation(booking=booking, unit=unit, start=start, end=end) for unit in target.units])
            booking_changed.send(Booking, booking=booking, event="created", by=user)
    except IntegrityError as error:
        _raise_conflict_from(error, target.units, start, end)
    return booking


@dataclass(frozen=True)
class _Ask:
    """A booking request read and checked as far as it can be without looking at other bookings."""

    target: Target
    start: datetime
    end: datetime
    purpose: str
    cpu_cores: int
    memory_gib: int
    pending: bool  # it would await staff's approval (needs_approval)

    @property
    def share_only(self):
        return not self.target.units and self.target.server is not None

    @property
    def whole(self):
        return self.target.whole_server and not self.share_only

    @property
    def pooled(self):
        return self.target.server is not None and bool(self.whole or self.cpu_cores or self.memory_gib)


def _ask(user, *, start, end, purpose, server, devices, room, cpu_cores, memory_gib, source, now, allow_past_start=False):
    """What create_booking checks before it takes its locks; raises BookingError."""
    cpu_cores, memory_gib = _amount(cpu_cores, "cpu_cores"), _amount(memory_gib, "memory_gib")
    target = resolve_target(server=server, devices=devices, room=room)
    if target.room is not None and (cpu_cores or memory_gib):
        raise BookingError("CPU cores and memory are shares of a server; a room is booked as a whole.", field="cpu_cores")
    if target.whole_server and (cpu_cores or memory_gib):  # shares alone: no units held
        target = Target(server=target.server, devices=(), room=None, units=())
    _check_times(start, end, now=now, allow_past_start=allow_past_start)
    purpose = _purpose(purpose)
    pending = needs_approval(user, target, source)
    if pending and start <= now:
        place = f"server {target.server.name}" if target.server is not None else f"room {target.room.name}"
        raise BookingError(
            f"Bookings of {place} need staff approval, so they cannot start right away; book it from a later start "
            "(staff decide before it), or ask the lab's staff.", field="start",
        )
    return _Ask(target, start, end, purpose, cpu_cores, memory_gib, pending)


def _check_limits(user, ask, *, now, group_id=fairuse.UNKNOWN, by=None):
    """The member's fair-use limits, then the server's pooled capacities; raises LimitExceeded, CapacityExceeded."""
    target = ask.target
    fairuse.check(
        user, server=target.server, room=target.room, gpus=fairuse.gpu_count(target), start=ask.start, end=ask.end, now=now,
        group_id=group_id, by=by,
    )
    if ask.pooled:
        capacity.check(target.server, cpu_cores=ask.cpu_cores, memory_gib=ask.memory_gib, whole=ask.whole, start=ask.start, end=ask.end)


@dataclass(frozen=True)
class Preview:
    """What create_booking would do with a request, found without writing (see preview_booking)."""

    target: Target
    start: datetime
    end: datetime
    cpu_cores: int
    memory_gib: int
    conflicts: list  # the bookings holding asked units meanwhile (Conflict), or []
    refusal: BookingError | None  # a limit or capacity it would be refused by, or None
    pending: bool  # it would await staff's approval

    @property
    def free(self):
        """It would be booked (confirmed, or awaiting approval when `pending`)."""
        return not self.conflicts and self.refusal is None


def preview_booking(
    user, *, start, end, purpose="", server=None, devices=None, room=None, cpu_cores=0, memory_gib=0,
    source=Booking.Source.WEB, now=None,
):
    """What create_booking(user, ...) with the same arguments would do now, without writing anything.

    Raises BookingError where create_booking would before looking at other bookings (an unknown
    server, bad times, a start that is too soon for approval); otherwise a Preview: free, taken by
    whom (conflicts), refused by a fair-use limit or a pooled capacity (refusal), awaiting approval
    (pending). The same checks as the booking, without its locks: the booking itself decides.
    """
    now = now or timezone.now()
    ask = _ask(
        user, start=start, end=end, purpose=purpose, server=server, devices=devices, room=room, cpu_cores=cpu_cores,
        memory_gib=memory_gib, source=source, now=now,
    )
    refusal = None
    try:
        _check_limits(user, ask, now=now)
    except BookingError as error:
        refusal = error
    return Preview(
        target=ask.target, start=start, end=end, cpu_cores=ask.cpu_cores, memory_gib=ask.memory_gib,
        conflicts=find_conflicts(ask.target.units, start, end) if ask.target.units else [], refusal=refusal, pending=ask.pending,
    )


def cancel_booking(booking, *, by, now=None):
    """Cancel a booking that has not started; its units are free again at once."""
    now = now or timezone.now()
    with transaction.atomic():
        booking = _lock_for_change(booking, by, now)
        if booking.start <= now:
            raise WrongState(f"Booking #{booking.pk} has already started; release it to end it now.")
        booking.status = Booking.Status.CANCELLED
        booking.sequence += 1
        booking.save(update_fields=["status", "sequence", "updated_at"])
        booking.allocations.update(active=False)
        booking_changed.send(Booking, booking=booking, event="cancelled", by=by)
    return booking


def release_booking(booking, *, by, now=None):
    """End a running booking now; the units are free from this moment on."""
    now = now or timezone.now()
    with transaction.atomic():
        booking = _lock_for_change(booking, by, now)
        if now <= booking.start:
            raise WrongState(f"Booking #{booking.pk} has not started yet; cancel it instead.")
        _lock(units=booking.allocations.values_list("unit_id", flat=True))
        booking.status = Booking.Status.RELEASED
        booking.end = now
        booking.sequence += 1
        booking.save(update_fields=["status", "end", "sequence", "updated_at"])
        booking.allocations.update(end=now)
        booking_changed.send(Booking, booking=booking, event="released", by=by)
    return booking


def extend_booking(booking, *, by, duration=None, end=None, now=None):
    """Move a booking's end later, by a duration ('1h') or to a new end; refused if that overlaps."""
    if (duration is None) == (end is None):
        raise BookingError("Give either a duration to extend by (e.g. 1h) or a new end time.", field="duration")
    if duration is not None:
        try:
            delta = parse_duration(duration) if isinstance(duration, str) else duration
        except ParseError as error:
            raise BookingError(str(error), field="duration") from None
        end = booking.end + delta
    elif end <= booking.end:
        raise BookingError("The new end must be later than the current one; to end earlier, change the time or release.", field="end")
    return change_booking(booking, by=by, end=end, now=now)


def change_booking(booking, *, by, start=None, end=None, purpose=None, now=None):
    """Move a booking's start and/or end, or change its purpose; the units stay the same. Refused if that overlaps."""
    now = now or timezone.now()
    purpose = None if purpose is None else _purpose(purpose)
    try:
        with transaction.atomic():
            booking = _lock_for_change(booking, by, now)
            new_start = booking.start if start is None else start
            new_end = booking.end if end is None else end
            if booking.status == Booking.Status.PENDING and new_start <= now:
                raise BookingError(f"Booking #{booking.pk} awaits approval, so it cannot start right away; choose a later start.", field="start")
            if booking.start <= now:
                if new_start != booking.start:
                    raise BookingError(f"Booking #{booking.pk} is running; its start cannot move.", field="start")
                if new_end <= now:
                    raise BookingError("The new end is in the past; to end the booking now, release it.", field="end")
                _check_times(new_start, new_end, now=now, allow_past_start=True)
            else:
                _check_times(new_start, new_end, now=now)
            held = list(booking.allocations.values_list("unit_id", "unit__kind"))
            units = [unit_id for unit_id, _ in held]
            moved = (new_start, new_end) != (booking.start, booking.end)
            pooled = booking.server_id is not None and (booking.whole_server or booking.cpu_cores or booking.memory_gib)
            # The owner's limits, whoever moves it: staff moving a member's booking keep it fair too.
            group_id = _lock(units=units, member=booking.user_id if moved else None, pooled_server=booking.server if pooled else None)
            if moved:
                fairuse.check(
                    booking.user, server=booking.server, room=booking.room, gpus=sum(kind == Unit.Kind.GPU for _, kind in held),
                    start=new_start, end=new_end, now=now, exclude=booking, group_id=group_id, by=by,
                )
            if pooled and (new_start < booking.start or new_end > booking.end):
                capacity.check(
                    booking.server, cpu_cores=booking.cpu_cores, memory_gib=booking.memory_gib, whole=booking.whole_server,
                    start=new_start, end=new_end, exclude=booking,
                )
            before = (booking.start, booking.end)
            booking.start, booking.end = new_start, new_end
            if purpose is not None:
                booking.purpose = purpose
            booking.sequence += 1
            booking.save(update_fields=["start", "end", "purpose", "sequence", "updated_at"])
            booking.allocations.update(start=new_start, end=new_end)
            booking_changed.send(Booking, booking=booking, event="changed", by=by, before=before)
    except IntegrityError as error:
        _raise_conflict_from(error, units, new_start, new_end, exclude=booking)
    return booking


# --- recurring bookings (series) ---------------------------------------------------------


@dataclass(frozen=True)
class SeriesResult:
    """What create_series booked and skipped, or what cancel_series cancelled and left running."""

    series: BookingSeries
    bookings: list  # booked (create) or cancelled (cancel), soonest first
    skipped: list  # Refusal per occurrence not booked (create); running bookings left alone (cancel)


@dataclass(frozen=True)
class SeriesPlan:
    """The dates a repeat rule gives, before anything is booked: starts are local (naive, in `zone`)."""

    rule: str
    until: object
    zone: object
    local: datetime
    starts: list

    def windows(self, length):
        """Each date as (start, end) in UTC."""
        return [(begin, begin + length) for begin in (local_start.astimezone(UTC) for local_start in self.starts)]


def plan_series(user, *, start, end, repeat=None, until=None, count=None, time_zone=None, now=None):
    """The dates of a series (see create_series), checked as create_series checks them; raises BookingError."""
    from .recurrence import occurrences, parse_repeat, rule_parts

    now = now or timezone.now()
    _check_times(start, end, now=now)
    zone = _zone_of(user, time_zone)
    try:
        rule, rule_until = parse_repeat(repeat) if isinstance(repeat, str) else (None, None)
    except ParseError as error:
        raise BookingError(str(error), field="repeat") from None
    if rule is None:
        raise BookingError("Say how the booking repeats, e.g. daily, weekdays, weekly or every 2 weeks.", field="repeat")
    until = until if until is not None else rule_until
    if count is not None:
        if "COUNT" in rule_parts(rule) or until is not None:
            raise BookingError("Give an until date or a number of times, not both.", field="count")
        if not isinstance(count, int) or count < 1:
            raise BookingError("The number of times must be a whole number, 1 or more.", field="count")
        rule += f";COUNT={count}"
    if until is None and "COUNT" not in rule_parts(rule):
        raise BookingError("Say until which date the booking repeats.", field="until")
    local = timezone.localtime(start, zone)
    if until is not None and until < local.date():
        raise BookingError(f"The repeat ends ({until:%d %b %Y}) before the first booking starts ({local:%d %b %Y}).", field="until")
    cap = settings.SERIES_MAX_OCCURRENCES
    ahead = series_horizon()
    horizon = timezone.localtime(now + ahead, zone)  # no date past it is looked at: the work is bounded
    try:
        found = occurrences(rule, first=local.replace(tzinfo=None), until=until, zone=zone, limit=cap, horizon=horizon.date())
        starts = [moment for moment in found if moment <= horizon]  # on the horizon's day, a later hour is past it
        if starts:
            starts[-1].astimezone(UTC) + (end - start)  # the last end must be a date Python can hold
    except OverflowError:
        raise BookingError("The repeat reaches too far ahead; choose an earlier until date or fewer times.", field="until") from None
    except (ParseError, ValueError) as error:
        raise BookingError(f"The repeat cannot be read: {error}", field="repeat") from None
    if len(starts) > cap:
        last = starts[cap - 1]
        raise BookingError(
            f"A series has at most {cap} bookings; this one would have more (the {cap}th on {last:%a %d %b %Y}). "
            "Choose an earlier until date, or fewer times.", field="until",
        )
    reach = f"bookings can be made up to {ahead.days} days ahead, until {horizon:%a %d %b %Y %H:%M}"
    if local > horizon:
        raise BookingError(f"The first date is too far ahead: {reach}.", field="start")
    if not starts:
        last_day = horizon.date() if until is None or until > horizon.date() else until
        raise BookingError(
            f"The repeat gives no date from {local:%d %b %Y} to {last_day:%d %b %Y} ({reach}); check the days and the months.",
            field="repeat",
        )
    times = int(rule_parts(rule).get("COUNT", 0))
    if len(found) > len(starts) or (until is not None and until > horizon.date()) or times > len(starts):
        more = f"its {times} dates" if times else f"its dates until {until:%d %b %Y}"
        raise BookingError(
            f"The repeat goes on past what can be booked ({reach}); {more} reach further. "
            "Choose an earlier until date, or fewer times.", field="until" if not times else "count" if count else "repeat",
        )
    return SeriesPlan(rule=rule, until=until, zone=zone, local=local, starts=starts)


def series_horizon():
    """How far ahead a series may reach: as far as one may book (BOOKING_MAX_AHEAD, a year by default)."""
    return parse_duration(settings.BOOKING_MAX_AHEAD)


def create_series(
    user, *, start, end, repeat=None, until=None, count=None, purpose="", server=None, devices=None, room=None,
    cpu_cores=0, memory_gib=0, source=Booking.Source.WEB, on_conflict="ask", time_zone=None, now=None,
):
    """Book [start, end) again and again by a repeat rule ('weekly', 'weekdays', an RRULE) until a date or
    `count` times; each occurrence passes create_booking's checks. Raises BookingError.

    on_conflict="ask": if any occurrence is refused, nothing is written and SeriesConflict lists each.
    "skip": the others are booked and the refused ones reported in the result (SeriesConflict if none fits).
    The rule is read in `time_zone` (default: the member's), so occurrences keep their wall-clock time.
    One "series_created" notification tells of all of them.
    """
    from notifications.outbox import is_muted, muted

    now = now or timezone.now()
    if on_conflict not in ("ask", "skip"):
        raise BookingError("on_conflict is 'ask' (book nothing if a date is taken) or 'skip' (book the others).", field="on_conflict")
    plan = plan_series(user, start=start, end=end, repeat=repeat, until=until, count=count, time_zone=time_zone, now=now)
    purpose = _purpose(purpose)
    rule, until, zone, local = plan.rule, plan.until, plan.zone, plan.local
    length = end - start
    resolve_target(server=server, devices=devices, room=room)  # an unknown server is one error, not one per date
    with transaction.atomic():
        series = BookingSeries.objects.create(
            user=user, rule=rule, first_date=local.date(), start_time=local.time().replace(tzinfo=None), length=length,
            time_zone=str(zone), until=until, purpose=purpose,
        )
        booked, refused = [], []
        with (nullcontext() if is_muted() else muted()):  # one message for the series, not one per date
            for begin, finish in plan.windows(length):
                try:
                    booked.append(create_booking(
                        user, start=begin, end=finish, purpose=purpose, server=server, devices=devices, room=room,
                        cpu_cores=cpu_cores, memory_gib=memory_gib, source=source, now=now,
                    ))
                except Busy:
                    raise
                except BookingError as error:  # create_booking's savepoint has undone this date alone
                    refused.append(Refusal(begin, finish, error))
        if refused and (on_conflict == "ask" or not booked):
            raise SeriesConflict(refused, total=len(plan.starts))
        Booking.objects.filter(pk__in=[booking.pk for booking in booked]).update(series=series)
        for booking in booked:
            booking.series = series
        series_changed.send(BookingSeries, series=series, event="series_created", by=user, bookings=booked, skipped=refused)
    return SeriesResult(series=series, bookings=booked, skipped=refused)


def cancel_series(series, *, by, now=None):
    """Cancel every occurrence of a series that has not started; a running one is left alone (released by hand).

    Owner or staff only. One "series_cancelled" notification tells of all of them.
    """
    from notifications.outbox import is_muted, muted

    now = now or timezone.now()
    with transaction.atomic():
        series = BookingSeries.objects.select_for_update().select_related("user").get(pk=series.pk)
        if series.user_id != by.pk and not by.is_staff:
            raise NotAllowed(f"Series #{series.pk} belongs to {series.user.get_username()}; only they or staff can cancel it.")
        current = list(series.bookings.filter(status__in=Booking.LIVE, end__gt=now).order_by("start"))  # pending dates too
        running = [booking for booking in current if booking.start <= now]
        with (nullcontext() if is_muted() else muted()):
            cancelled = [cancel_booking(booking, by=by, now=now) for booking in current if booking.start > now]
        if not cancelled:
            still = f"; booking #{running[0].pk} is running: release it to end it now" if running else ""
            raise WrongState(f"Series #{series.pk} has nothing left to cancel{still}.")
        series_changed.send(BookingSeries, series=series, event="series_cancelled", by=by, bookings=cancelled, skipped=running)
    return SeriesResult(series=series, bookings=cancelled, skipped=running)


def _zone_of(user, name=None):
    """The zone a series' rule is read in: the one given, else the member's, else the lab's."""
    import zoneinfo

    name = name or getattr(getattr(user, "profile", None), "time_zone", "") or settings.TIME_ZONE
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise BookingError(f"'{name}' is not a time zone; write e.g. Europe/Berlin.", field="time_zone") from None


# --- approval ----------------------------------------------------------------------------
# A member's booking of a server or room with requires_approval starts PENDING: it holds its units
# (Booking.HOLDING) and counts against limits and capacities until staff approve it (CONFIRMED),
# decline it, or nobody decides by its start (both CANCELLED, its units free at once).


def needs_approval(user, target, source):
    """Whether a new booking waits for staff: a member's, of a resource that requires approval.

    Staff's own bookings, bookings staff make in the admin and calendar imports (set up by staff)
    are confirmed directly.
    """
    if user.is_staff or source in (Booking.Source.ADMIN, Booking.Source.CALENDAR):
        return False
    place = target.server or target.room
    return bool(place is not None and place.requires_approval)


def approve_booking(booking, *, by, now=None):
    """Staff: confirm a booking awaiting approval; it keeps what it holds. Raises NotAllowed, NotPending."""
    now = now or timezone.now()
    with transaction.atomic():
        booking = _lock_for_decision(booking, by, now, verb="approve")
        booking.status = Booking.Status.CONFIRMED
        booking.decision, booking.decided_by, booking.decided_at = Booking.Decision.APPROVED, by, now
        booking.sequence += 1
        booking.save(update_fields=["status", "decision", "decided_by", "decided_at", "sequence", "updated_at"])
        booking_changed.send(Booking, booking=booking, event="approved", by=by)
    return booking


def decline_booking(booking, *, by, reason="", now=None):
    """Staff: refuse a booking awaiting approval; it is cancelled and its units are free at once.

    `reason` is shown to the member. Raises NotAllowed, NotPending.
    """
    now = now or timezone.now()
    reason = _reason(reason)
    with transaction.atomic():
        booking = _lock_for_decision(booking, by, now, verb="decline")
        booking.status = Booking.Status.CANCELLED
        booking.decision, booking.decided_by, booking.decided_at = Booking.Decision.DECLINED, by, now
        booking.decision_note = reason
        booking.sequence += 1
        booking.save(update_fields=["status", "decision", "decided_by", "decided_at", "decision_note", "sequence", "updated_at"])
        booking.allocations.update(active=False)
        booking_changed.send(Booking, booking=booking, event="declined", by=by)
    return booking


def decide_series(series, *, by, approve, reason="", now=None):
    """Staff: approve (or decline) every date of a series still awaiting approval, in one go.

    Each date is decided as approve_booking / decline_booking would; dates already decided or
    started are left as they are. One message tells the member of all of them ("approved" or
    "declined" with the series' dates), not one per date. Raises NotAllowed, NotPending.
    """
    from notifications.outbox import is_muted, muted

    now = now or timezone.now()
    if not getattr(by, "is_staff", False):
        raise NotAllowed(f"Only staff can {'approve' if approve else 'decline'} bookings.")
    reason = _reason(reason)
    with transaction.atomic():
        series = BookingSeries.objects.select_for_update(of=("self",)).select_related("user").get(pk=series.pk)
        pending = list(pending_dates(series, now))
        if not pending:
            raise NotPending(f"Series #{series.pk} has no dates awaiting approval; each was decided, or has started.")
        with (nullcontext() if is_muted() else muted()):
            decided = [
                approve_booking(booking, by=by, now=now) if approve else decline_booking(booking, by=by, reason=reason, now=now)
                for booking in pending
            ]
        event = "series_approved" if approve else "series_declined"
        series_changed.send(BookingSeries, series=series, event=event, by=by, bookings=decided, reason=reason)
    return SeriesResult(series=series, bookings=decided, skipped=[])


def pending_dates(series, now=None):
    """The dates of a series (or of the series with this id) still awaiting approval, soonest first: a queryset."""
    return Booking.objects.filter(
        series_id=getattr(series, "pk", series), status=Booking.Status.PENDING, start__gt=now or timezone.now(),
    ).order_by("start", "pk")


def expire_pending_bookings(now=None):
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
            booking_changed.send(Booking, booking=booking, event="expired", by=None)
            expired += 1
    return expired


def _lock_for_decision(booking, by, now, *, verb):
    """Reload the booking under a row lock and check that `by` may decide it and it awaits a decision."""
    if not getattr(by, "is_staff", False):
        raise NotAllowed(f"Only staff can {verb} bookings.")
    booking = Booking.objects.select_for_update(of=("self",), no_key=True).select_related("user", "server", "room").get(pk=booking.pk)
    if booking.status != Booking.Status.PENDING:
        raise NotPending(f"Booking #{booking.pk} {_decided(booking)}; only a booking awaiting approval can be approved or declined.")
    if booking.start <= now:
        raise NotPending(f"Booking #{booking.pk} was not decided before its start and expires now; the member can book again.")
    return booking


def _decided(booking):
    """'was already approved by stella', 'was cancelled', ...: why there is nothing to decide."""
    from .models import member_name

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


# --- validation --------------------------------------------------------------------------


def _check_times(start, end, *, now, allow_past_start=False):
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, datetime):
            raise BookingError(f"The {name} must be a date and time.", field=name)
        if timezone.is_naive(value):
            raise BookingError(f"The {name} needs a time zone.", field=name)
    if end <= start:
        raise BookingError("The end must be after the start.", field="end")
    grace = parse_duration(settings.BOOKING_PAST_GRACE)
    if not allow_past_start and start < now - grace:
        raise BookingError("The start is in the past; book from now on.", field="start")
    if start < EARLIEST:
        raise BookingError(f"The start is before {EARLIEST.year}; check the year.", field="start")
    # Compared, not added to: a far-off time in a zone off UTC may be a moment Python cannot convert.
    ahead = parse_duration(settings.BOOKING_MAX_AHEAD)
    if start > now + ahead:
        raise BookingError(
            f"Bookings start at most {format_duration(ahead)} ahead, by {_day(now + ahead)}; this one would start on {_day(start)}.",
            field="start",
        )
    longest = parse_duration(settings.BOOKING_MAX_LENGTH)
    if end - start > longest:
        raise BookingError(
            f"A booking may last at most {format_duration(longest)}; this one would last {format_duration(end - start)}.",
            field="end",
        )


def _purpose(purpose):
    """A booking's (or series', or waitlist entry's) purpose: one line of plain text, as long as the column holds."""
    return check_text(purpose, field="purpose", label="purpose", max_length=Booking._meta.get_field("purpose").max_length)


def _reason(reason):
    """Staff's reason for a decline, shown to the member."""
    return check_text(reason, field="reason", label="reason", max_length=Booking._meta.get_field("decision_note").max_length)


def _day(moment):
    """'31 Dec 2027' in the active zone; a date too far off to convert is written as it was given."""
    try:
        moment = timezone.localtime(moment)
    except OverflowError:
        pass
    return f"{moment.day} {moment:%b} {moment.year}"


def _get_server(server):
    if not isinstance(server, Server):
        name = str(server).strip()
        server = Server.objects.filter(name__iexact=name).first()
        if server is None:
            known = ", ".join(Server.objects.filter(active=True).values_list("name", flat=True)) or "none yet"
            raise BookingError(f"There is no server '{name}'; servers: {known}.", field="server")
    if not server.active:
        raise BookingError(f"Server {server.name} is out of service and cannot be booked.", field="server")
    return server


def _get_room(room):
    if not isinstance(room, Room):
        name = str(room).strip()
        room = Room.objects.filter(name__iexact=name).select_related("unit").first()
        if room is None:
            known = ", ".join(Room.objects.filter(active=True).values_list("name", flat=True)) or "none yet"
            raise BookingError(f"There is no room '{name}'; rooms: {known}.", field="room")
    if not room.active:
        raise BookingError(f"Room {room.name} is out of service and cannot be booked.", field="room")
    return room


def _parse_indices(devices):
    try:
        return parse_device_set(devices) if isinstance(devices, str) else sorted({int(i) for i in devices})
    except (ParseError, TypeError, ValueError) as error:
        message = str(error) if isinstance(error, ParseError) else "Devices must be GPU indices, e.g. 0-2,5."
        raise BookingError(message, field="devices") from None


def _check_devices(server, indices):
    if not indices:
        raise BookingError("Name at least one GPU, e.g. 0 or 0-1, or book the whole server.", field="devices")
    found = {d.index: d for d in Device.objects.filter(server=server)}
    if not found:
        raise BookingError(f"{server.name} has no GPUs; book the whole server instead (just '{server.name}').", field="devices")
    missing = [i for i in indices if i not in found]
    if missing:
        has = f"it has {format_device_set(found)}"
        noun = "device" if len(missing) == 1 else "devices"
        verb = "does" if len(missing) == 1 else "do"
        raise BookingError(f"{noun.capitalize()} {format_device_set(missing)} {verb} not exist on {server.name} ({has}).", field="devices")
    inactive = [i for i in indices if not found[i].active]
    if inactive:
        raise BookingError(f"GPU {format_device_set(inactive)} on {server.name} is out of service and cannot be booked.", field="devices")


def _lock_for_change(booking, by, now):
    """Reload the booking under a row lock and check that `by` may change it."""
    # NO KEY UPDATE: a concurrent insert that only references this booking (an outbox row telling its
    # owner that someone booked right after it) must not wait for us while we wait for its units.
    booking = Booking.objects.select_for_update(of=("self",), no_key=True).select_related("user", "server", "room").get(pk=booking.pk)
    if booking.user_id != by.pk and not by.is_staff:
        raise NotAllowed(f"Booking #{booking.pk} belongs to {booking.user.get_username()}; only they or staff can change it.")
    if booking.status == Booking.Status.CANCELLED:
        raise WrongState(f"Booking #{booking.pk} is cancelled.")
    if booking.status == Booking.Status.RELEASED:
        raise WrongState(f"Booking #{booking.pk} was already released.")
    if booking.end <= now:
        raise WrongState(f"Booking #{booking.pk} has already ended.")
    if booking.status == Booking.Status.PENDING and booking.start <= now:
        raise WrongState(f"Booking #{booking.pk} was not approved before its start; it has expired.")
    return booking


def _amount(value, field):
    try:
        amount = int(value or 0)
    except (TypeError, ValueError):
        amount = -1
    if amount < 0:
        raise BookingError(f"{'CPU cores' if field == 'cpu_cores' else 'Memory (GiB)'} must be a whole number, 0 or more.", field=field)
    return amount


def _lock(*, units=(), member=None, pooled_server=None):
    """Take this transaction's locks in one round trip; returns the member's group id (see fairuse.check).

    PostgreSQL: advisory locks, always taken in ascending key order, so two transactions never
    wait for each other in a circle: a member's key (their bookings, for their fair-use limits:
    the limits are checked against what they hold, not what they held before another request of
    theirs committed) sorts below every unit's key; then the units about to be written, then, for
    a booking that shares the server's pooled capacities, the server's own unit, which serializes
    everything that shares them. Without the unit locks, two transactions inserting overlapping
    rows can each wait for the other inside the exclusion constraint, a deadlock PostgreSQL breaks
    only after a second; with them, the later writer waits for the earlier one's commit, then meets
    its row at once. The member's group is read in the same statement.
    SQLite needs no locks: BEGIN IMMEDIATE has serialized the writers already.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("booking locks are taken inside a transaction only")
    if connection.vendor != "postgresql":
        return fairuse.UNKNOWN
    keys = sorted({(UNIT_LOCK_NAMESPACE << 32) | unit_id for unit_id in units})
    if member is not None:
        keys.insert(0, (MEMBER_LOCK_NAMESPACE << 32) | member)
    try:
        with prepared_cursor(connection) as cursor:
            # The timeout is set (for this transaction) before the first lock is asked for, and
            # unnest() yields the keys in the sorted array's order.
            cursor.execute(
                f"WITH timeout AS (SELECT set_config('lock_timeout', %s, true)),"
                f" wanted AS (SELECT unnest(%s::bigint[]) AS key UNION SELECT (%s::bigint << 32) | id FROM {Unit._meta.db_table}"
                f"  WHERE kind = 'server' AND server_id = %s)"
                f" SELECT pg_advisory_xact_lock(key), (SELECT group_id FROM {Profile._meta.db_table} WHERE user_id = %s)"
                f" FROM timeout, unnest(ARRAY(SELECT key FROM wanted ORDER BY key)) AS key",
                [UNIT_LOCK_TIMEOUT, keys, UNIT_LOCK_NAMESPACE, getattr(pooled_server, "pk", None), member],
            )
            rows = cursor.fetchall()
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == "55P03":  # lock_not_available
            raise Busy("Others are booking the same GPUs, server or room, or changing your other bookings, right now; please try again in a moment.") from None
        raise
    return rows[0][1] if rows and member is not None else fairuse.UNKNOWN


# --- conflicts ---------------------------------------------------------------------------


def find_conflicts(units, start, end, *, exclude=None):
    """The bookings that hold any of `units` during [start, end), each with the units it holds."""
    overlapping = Allocation.objects.filter(unit__in=units, active=True, start__lt=end, end__gt=start)
    if exclude is not None:
        overlapping = overlapping.exclude(booking=exclude)
    # The common answer is "none": ask it without joins, which PostgreSQL plans in a fraction
    # of the time a six-table join takes; load the details only for a refusal.
    booking_ids = set(overlapping.values_list("booking_id", flat=True))
    if not booking_ids:
        return []
    bookings = Booking.objects.filter(pk__in=booking_ids).select_related("user__profile", "server", "room").order_by("start", "pk")
    held = {}
    for allocation in overlapping.select_related("unit__device").order_by("unit_id"):
        held.setdefault(allocation.booking_id, []).append(allocation.unit)
    return [Conflict(booking=booking, units=tuple(held[booking.pk])) for booking in bookings]


def _raise_conflict_from(error, units, start, end, *, exclude=None):
    """A concurrent writer won the race; name it, or re-raise an unrelated integrity error."""
    cause = error.__cause__
    if getattr(cause, "sqlstate", None) != OVERLAP_SQLSTATE and SQLITE_OVERLAP_MARKER not in str(error):
        raise error
    raise BookingConflict(find_conflicts(units, start, end, exclude=exclude)) from None
