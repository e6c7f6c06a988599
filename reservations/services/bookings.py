"""Every write to bookings goes through these functions, whatever the surface.

Each validates, then writes inside one transaction. Overlaps are refused by the database
(exclusion constraint on PostgreSQL, triggers plus IMMEDIATE transactions on SQLite); when
it refuses, find_conflicts says who holds what, from when to when, and why.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NoReturn

from django.db import IntegrityError, transaction
from django.utils import timezone

from labres.db import insert

from ..errors import BookingConflict, BookingError, Conflict, NotAllowed, WrongState
from ..locking import lock
from ..models import Allocation, Booking, Unit
from ..parsing import PLACE, ParseError, describe_target, parse_duration
from ..signals import booking_changed
from . import capacity, fairuse
from .approval import needs_approval
from .audit import Action, log_action, snapshot
from .targets import Target, resolve_target
from .validation import check_amount, check_purpose, check_times

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from ..models import Room, Server

OVERLAP_SQLSTATE = "23P01"  # PostgreSQL exclusion_violation (of allocation_no_overlap: the only exclusion constraint)
SQLITE_OVERLAP_MARKER = "allocation_overlap"  # in the message of the SQLite triggers (migration 0002)


def create_booking(
    user: User, *, start: datetime, end: datetime, purpose: str = "", server: Server | str | None = None,
    devices: str | Sequence[int] | None = None, room: Room | str | None = None, cpu_cores: int | str | None = 0,
    memory_gib: int | str | None = 0, source: str = Booking.Source.WEB, now: datetime | None = None, allow_past_start: bool = False,
    by: User | None = None,
) -> Booking:
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
    group_id = fairuse.group_for_limits(user)
    try:
        # The database refuses an overlap (see the module docstring); there is no need to look
        # before writing. Only a refusal pays for finding out who holds the units.
        with transaction.atomic():
            lock(user, *target.units, *_pool_unit(target.server, target.units, ask.pooled))
            _check_limits(user, ask, now=now, by=by, group_id=group_id)
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
            log_action(booking, Action.CREATED, by=by or user, surface=source, at=now)
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
    def share_only(self) -> bool:
        return not self.target.units and self.target.server is not None

    @property
    def whole(self) -> bool:
        return self.target.whole_server and not self.share_only

    @property
    def pooled(self) -> bool:
        return self.target.server is not None and bool(self.whole or self.cpu_cores or self.memory_gib)


def _ask(
    user: User, *, start: datetime, end: datetime, purpose: str, server: Server | str | None, devices: str | Sequence[int] | None,
    room: Room | str | None, cpu_cores: int | str | None, memory_gib: int | str | None, source: str, now: datetime,
    allow_past_start: bool = False,
) -> _Ask:
    """What create_booking checks before it takes its locks; raises BookingError."""
    cpu_cores, memory_gib = check_amount(cpu_cores, "cpu_cores"), check_amount(memory_gib, "memory_gib")
    target = resolve_target(server=server, devices=devices, room=room)
    if target.room is not None and (cpu_cores or memory_gib):
        raise BookingError("CPU cores and memory are shares of a server; a room is booked as a whole.", field="cpu_cores")
    if target.whole_server and (cpu_cores or memory_gib):  # shares alone: no units held
        target = Target(server=target.server, devices=(), room=None, units=())
    check_times(start, end, now=now, allow_past_start=allow_past_start)
    purpose = check_purpose(purpose)
    pending = needs_approval(user, target, source)
    if pending and start <= now:
        place = (
            describe_target(target.server.name, style=PLACE) if target.server is not None
            else describe_target(room=target.room.name)  # type: ignore[union-attr]  # a target without a server holds a room
        )
        raise BookingError(
            f"Bookings of {place} need staff approval, so they cannot start right away; book it from a later start "
            "(staff decide before it), or ask the lab's staff.", field="start",
        )
    return _Ask(target, start, end, purpose, cpu_cores, memory_gib, pending)


def _check_limits(
    user: User, ask: _Ask, *, now: datetime, by: User | None = None, group_id: int | None | object = fairuse.UNKNOWN,
) -> None:
    """The member's fair-use limits, then the server's pooled capacities; raises LimitExceeded, CapacityExceeded."""
    target = ask.target
    fairuse.check(
        user, server=target.server, room=target.room, gpus=fairuse.gpu_count(target), start=ask.start, end=ask.end, now=now, by=by,
        group_id=group_id,
    )
    if ask.pooled:
        assert target.server is not None, "a pooled ask is of a server (_Ask.pooled)"
        capacity.check(target.server, cpu_cores=ask.cpu_cores, memory_gib=ask.memory_gib, whole=ask.whole, start=ask.start, end=ask.end)


@dataclass(frozen=True)
class Preview:
    """What create_booking would do with a request, found without writing (see preview_booking)."""

    target: Target
    start: datetime
    end: datetime
    cpu_cores: int
    memory_gib: int
    conflicts: list[Conflict]  # the bookings holding asked units meanwhile (Conflict), or []
    refusal: BookingError | None  # a limit or capacity it would be refused by, or None
    pending: bool  # it would await staff's approval

    @property
    def free(self) -> bool:
        """It would be booked (confirmed, or awaiting approval when `pending`)."""
        return not self.conflicts and self.refusal is None


def preview_booking(
    user: User, *, start: datetime, end: datetime, purpose: str = "", server: Server | str | None = None,
    devices: str | Sequence[int] | None = None, room: Room | str | None = None, cpu_cores: int | str | None = 0,
    memory_gib: int | str | None = 0, source: str = Booking.Source.WEB, now: datetime | None = None,
) -> Preview:
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


def cancel_booking(booking: Booking, *, by: User, now: datetime | None = None) -> Booking:
    """Cancel a booking that has not started; its units are free again at once."""
    now = now or timezone.now()
    with transaction.atomic():
        booking = _lock_for_change(booking, by, now)
        was = snapshot(booking)
        if booking.start <= now:
            raise WrongState(f"Booking #{booking.pk} has already started; release it to end it now.")
        booking.status = Booking.Status.CANCELLED
        booking.sequence += 1
        booking.save(update_fields=["status", "sequence", "updated_at"])
        booking.allocations.update(active=False)
        log_action(booking, Action.CANCELLED, by=by, before=was, at=now)
        booking_changed.send(Booking, booking=booking, event="cancelled", by=by)
    return booking


def release_booking(booking: Booking, *, by: User | None, now: datetime | None = None) -> Booking:
    """End a running booking now; the units are free from this moment on. `by` None: the system (an idle
    booking released by its server's policy), which the audit log names as such."""
    now = now or timezone.now()
    with transaction.atomic():
        booking = _lock_for_change(booking, by, now)
        was = snapshot(booking)
        if now <= booking.start:
            raise WrongState(f"Booking #{booking.pk} has not started yet; cancel it instead.")
        lock(*(Unit(pk=unit_id) for unit_id in booking.allocations.values_list("unit_id", flat=True)))
        booking.status = Booking.Status.RELEASED
        booking.end = now
        booking.sequence += 1
        booking.save(update_fields=["status", "end", "sequence", "updated_at"])
        booking.allocations.update(end=now)
        log_action(booking, Action.RELEASED, by=by, before=was, at=now)
        booking_changed.send(Booking, booking=booking, event="released", by=by)
    return booking


def extend_booking(
    booking: Booking, *, by: User, duration: str | timedelta | None = None, end: datetime | None = None, now: datetime | None = None,
) -> Booking:
    """Move a booking's end later, by a duration ('1h') or to a new end; refused if that overlaps."""
    if (duration is None) == (end is None):
        raise BookingError("Give either a duration to extend by (e.g. 1h) or a new end time.", field="duration")
    if duration is not None:
        try:
            delta = parse_duration(duration) if isinstance(duration, str) else duration
        except ParseError as error:
            raise BookingError(str(error), field="duration") from None
        end = booking.end + delta
    elif end is not None and end <= booking.end:  # end is given here: exactly one of the two is (checked above)
        raise BookingError("The new end must be later than the current one; to end earlier, change the time or release.", field="end")
    return change_booking(booking, by=by, end=end, now=now)


def change_booking(
    booking: Booking, *, by: User, start: datetime | None = None, end: datetime | None = None, purpose: str | None = None,
    now: datetime | None = None,
) -> Booking:
    """Move a booking's start and/or end, or change its purpose; the units stay the same. Refused if that overlaps."""
    now = now or timezone.now()
    purpose = None if purpose is None else check_purpose(purpose)
    try:
        with transaction.atomic():
            booking = _lock_for_change(booking, by, now)
            was = snapshot(booking)
            new_start = booking.start if start is None else start
            new_end = booking.end if end is None else end
            if (new_start, new_end) == (booking.start, booking.end) and purpose in (None, booking.purpose):
                return booking  # nothing changes: nothing is written, logged, or told
            if booking.status == Booking.Status.PENDING and new_start <= now:
                raise BookingError(f"Booking #{booking.pk} awaits approval, so it cannot start right away; choose a later start.", field="start")
            if booking.start <= now:
                if new_start != booking.start:
                    raise BookingError(f"Booking #{booking.pk} is running; its start cannot move.", field="start")
                if new_end <= now:
                    raise BookingError("The new end is in the past; to end the booking now, release it.", field="end")
                check_times(new_start, new_end, now=now, allow_past_start=True)
            else:
                check_times(new_start, new_end, now=now)
            held = list(booking.allocations.values_list("unit_id", "unit__kind"))
            units = [unit_id for unit_id, _ in held]
            moved = (new_start, new_end) != (booking.start, booking.end)
            pooled = booking.server_id is not None and (booking.whole_server or booking.cpu_cores or booking.memory_gib)
            # The owner's limits, whoever moves it: staff moving a member's booking keep it fair too.
            held_units = [Unit(pk=unit_id, kind=kind) for unit_id, kind in held]
            lock(*([booking.user] if moved else []), *held_units, *_pool_unit(booking.server, held_units, pooled))
            if moved:
                fairuse.check(
                    booking.user, server=booking.server, room=booking.room, gpus=sum(kind == Unit.Kind.GPU for _, kind in held),
                    start=new_start, end=new_end, now=now, exclude=booking, by=by,
                )
            if pooled and (new_start < booking.start or new_end > booking.end):
                assert booking.server is not None, "pooled: a booking of a server (capacity.check reads it next anyway)"
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
            log_action(booking, Action.CHANGED, by=by, before=was, at=now)
            booking_changed.send(Booking, booking=booking, event="changed", by=by, before=before)
    except IntegrityError as error:
        _raise_conflict_from(error, units, new_start, new_end, exclude=booking)
    return booking


def _pool_unit(server: Server | None, units: Sequence[Unit], pooled: bool | int) -> list[Unit]:
    """[the server's own unit] for a booking that shares its pooled capacities (locking it serializes
    everything that shares them), unless the booking holds it already; else []."""
    if not pooled or any(unit.kind == Unit.Kind.SERVER for unit in units):
        return []
    return list(Unit.objects.filter(kind=Unit.Kind.SERVER, server=server).only("pk"))


def _lock_for_change(booking: Booking, by: User | None, now: datetime) -> Booking:
    """Reload the booking under a row lock and check that `by` (None: the system) may change it."""
    # NO KEY UPDATE: a concurrent insert that only references this booking (an outbox row telling its
    # owner that someone booked right after it) must not wait for us while we wait for its units.
    booking = Booking.objects.select_for_update(of=("self",), no_key=True).select_related("user", "server", "room").get(pk=booking.pk)
    if by is not None and booking.user_id != by.pk and not by.is_staff:
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


def find_conflicts(units: Iterable[Unit | int], start: datetime, end: datetime, *, exclude: Booking | None = None) -> list[Conflict]:
    """The bookings that hold any of `units` during [start, end), each with the units it holds."""
    overlapping = Allocation.objects.active().overlapping(start, end).filter(unit__in=units)
    if exclude is not None:
        overlapping = overlapping.exclude(booking=exclude)
    # The common answer is "none": ask it without joins, which PostgreSQL plans in a fraction
    # of the time a six-table join takes; load the details only for a refusal.
    booking_ids = set(overlapping.values_list("booking_id", flat=True))
    if not booking_ids:
        return []
    bookings = Booking.objects.filter(pk__in=booking_ids).select_related("user__profile", "server", "room").order_by("start", "pk")
    held: dict[int, list[Unit]] = {}
    for allocation in overlapping.select_related("unit__device").order_by("unit_id"):
        held.setdefault(allocation.booking_id, []).append(allocation.unit)
    return [Conflict(booking=booking, units=tuple(held[booking.pk])) for booking in bookings]


def classify_integrity_error(error: IntegrityError) -> str | None:
    """"overlap" when the database refused two active allocations of one unit at overlapping times
    (PostgreSQL's exclusion constraint, SQLite's triggers); None for any other IntegrityError."""
    if getattr(error.__cause__, "sqlstate", None) == OVERLAP_SQLSTATE or SQLITE_OVERLAP_MARKER in str(error):
        return "overlap"
    return None


def _raise_conflict_from(
    error: IntegrityError, units: Iterable[Unit | int], start: datetime, end: datetime, *, exclude: Booking | None = None,
) -> NoReturn:
    """A concurrent writer won the race; name it, or re-raise an unrelated integrity error."""
    if classify_integrity_error(error) != "overlap":
        raise error
    raise BookingConflict(find_conflicts(units, start, end, exclude=exclude)) from None
