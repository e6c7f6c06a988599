"""The waitlist ("tell me when"): join, withdraw, match freed slots to the first in line, claim an offer.

How the line works (decisions, also in the README):
- Entries of one server or room are served in order of `queued_at` (when they joined), first-fit:
  the first entry whose request fits from now is offered. A big request at the head does not
  block smaller ones behind it: GPUs freed one at a time might never add up to its size while
  they stand idle, which helps nobody. It keeps its place, so it is offered first once enough
  is free at the same moment.
- An offer holds its GPUs (or the whole server, or the room) for WAITLIST_OFFER_MINUTES: they are
  offered to nobody else meanwhile. Booking them directly stays possible; a claim that then
  finds them taken says so and puts the entry back in line at its place.
- An offer that runs out unclaimed sends its entry to the back of the line (it waits on, but
  no longer blocks others); after WAITLIST_MAX_IGNORED_OFFERS such offers it lapses. An entry
  also lapses once its latest useful start (`not_after`, default WAITLIST_MAX_WAIT) has passed.
- A slot "fits" when the GPUs are free from now until now + offer time + length, so a claim
  made at the last minute still gets the whole length.
- Matching is serialized per server or room: a PostgreSQL advisory transaction lock (SQLite's
  BEGIN IMMEDIATE serializes writers already) and the entries locked with select_for_update,
  so two workers never offer the same GPUs twice.
- A claim is an ordinary booking through create_booking (fair-use limits apply), made
  only for the entry's own member, signed in; the offer's token is spent by a conditional UPDATE,
  so two clicks book once.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from labres.celery import enqueue_after_commit

from ..errors import BookingConflict, BookingError, Busy, NotAllowed, OfferUnavailable
from ..locking import lock
from ..models import Allocation, Booking, Device, Room, Server, Unit, WaitlistEntry
from ..parsing import (
    ParseError,
    format_device_set,
    format_duration,
    parse_device_set,
    parse_duration,
)
from ..signals import waitlist_changed, waitlist_told
from . import fairuse
from .bookings import create_booking
from .capacity import peak_load
from .targets import get_bookable_room, get_bookable_server
from .validation import check_amount, check_purpose

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def offer_length() -> timedelta:
    return timedelta(minutes=settings.WAITLIST_OFFER_MINUTES)


# --- joining and leaving ------------------------------------------------------------------------


def join(
    user: User, *, server: Server | str | None = None, gpus: int | str | None = None, room: Room | str | None = None,
    length: str | timedelta, not_after: datetime | None = None, purpose: str = "", wanted: str = "", cpu_cores: int | str | None = 0,
    memory_gib: int | str | None = 0, now: datetime | None = None,
) -> WaitlistEntry:
    """Put `user` in line for `gpus` GPUs of a server (None: the whole server) or a room, for `length`.

    cpu_cores and memory_gib ask for shares of the server's pooled capacities too (with gpus=0: them
    alone). `wanted` is the device set the member had picked, so an offer of others can say so.
    """
    now = now or timezone.now()
    if (server is None) == (room is None):
        raise BookingError("Wait for a server (some GPUs or the whole of it) or a room, not both and not neither.", field="server")
    length = _length(length)
    not_after = _not_after(not_after, now)
    purpose = check_purpose(purpose)
    cpu_cores, memory_gib = check_amount(cpu_cores, "cpu_cores"), check_amount(memory_gib, "memory_gib")
    if room is not None:
        room = get_bookable_room(room)
        if gpus is not None:
            raise BookingError("A room is booked as a whole; leave out the number of GPUs.", field="gpus")
        if cpu_cores or memory_gib:
            raise BookingError("CPU cores and memory are shares of a server; a room is booked as a whole.", field="cpu_cores")
    else:
        server = get_bookable_server(server)
        assert isinstance(server, Server), "get_bookable_server returns a Server or raises"
        gpus = _gpus(server, gpus, shares=bool(cpu_cores or memory_gib))
        if cpu_cores or memory_gib:
            _check_amounts(server, gpus, cpu_cores, memory_gib)
    assert not isinstance(server, str) and not isinstance(room, str), "the server or the room was looked up above"
    wanted = _wanted(wanted) if gpus else ""
    whole = Device.objects.filter(server=server, active=True).count() if server is not None and gpus is None else 0
    fairuse.check_wait(user, server=server, room=room, gpus=gpus or whole, length=length)
    with transaction.atomic():
        taken = WaitlistEntry.objects.filter(user=user, state__in=WaitlistEntry.OPEN, server=server, room=room).first()
        if taken is not None:
            raise BookingError(
                f"You are already waiting for {taken.what} (entry #{taken.pk}); withdraw it first to ask for something else there.",
                field="server" if server else "room",
            )
        try:
            with transaction.atomic():
                entry = WaitlistEntry.objects.create(
                    user=user, server=server, room=room, gpus=gpus, length=length, not_after=not_after,
                    purpose=purpose, queued_at=now, wanted_devices=wanted, cpu_cores=cpu_cores, memory_gib=memory_gib,
                )
        except IntegrityError:  # the same member joined the same line at the same moment (one open entry each)
            raise BookingError("You are already waiting there; withdraw that entry first.", field="server" if server else "room") from None
        _match_after_commit(entry)
    return entry


def how_you_will_hear(user: User) -> tuple[list[str], str]:
    """(channel names, one sentence to the member on joining): how they will hear of their turn, or that they
    will not and where to look instead. The same words on every surface that joins."""
    from django.urls import reverse

    # Each receiver answers (channel names, words); django-stubs types a signal's answers as str.
    answers: list[Any] = [answer for _, answer in waitlist_told.send(WaitlistEntry, user=user) if answer]
    channels: list[str]
    words: str
    channels, words = answers[0] if answers else ([], "labres sends no messages")
    if channels:
        return channels, f"We will tell you {words} as soon as it is free."
    return [], (
        f"Nobody will tell you when it is free: {words}. Look at My bookings ({settings.SITE_URL}{reverse('my-bookings')}) "
        f"for your turn: an offer is held for you {settings.WAITLIST_OFFER_MINUTES} minutes."
    )


def withdraw(entry: WaitlistEntry, *, by: User, now: datetime | None = None) -> WaitlistEntry:
    """Leave the line (the member, or staff); an open offer is given up and passes to the next."""
    now = now or timezone.now()
    with transaction.atomic():
        entry = WaitlistEntry.objects.select_for_update().select_related("user").get(pk=entry.pk)
        if entry.user_id != by.pk and not by.is_staff:
            raise NotAllowed(f"Waitlist entry #{entry.pk} belongs to {entry.user.get_username()}; only they or staff can withdraw it.")
        if not entry.is_open:
            raise BookingError(f"Waitlist entry #{entry.pk} is {entry.state} already.")
        was_offered = entry.state == WaitlistEntry.State.OFFERED
        _close(entry, WaitlistEntry.State.WITHDRAWN, now)
        if was_offered:
            _match_after_commit(entry)
    return entry


def _length(value: str | timedelta) -> timedelta:
    try:
        length = parse_duration(value) if isinstance(value, str) else value
    except ParseError as error:
        raise BookingError(f"{error} Write the length like 2h, 1h30m or 1d.", field="length") from None
    if not isinstance(length, timedelta) or length <= timedelta(0):
        raise BookingError("Give a length like 2h, 1h30m or 1d.", field="length")
    longest = parse_duration(settings.BOOKING_MAX_LENGTH)
    if length > longest:
        raise BookingError(f"A booking may last at most {format_duration(longest)}; ask for that or less.", field="length")
    return length


def _not_after(value: datetime | None, now: datetime) -> datetime:
    longest = parse_duration(settings.WAITLIST_MAX_WAIT)
    if value is None:
        return now + longest
    if timezone.is_naive(value):
        raise BookingError("The latest start needs a time zone.", field="not_after")
    if value <= now:
        raise BookingError("The latest start is in the past; give a later one, or leave it out (as soon as possible).", field="not_after")
    if value > now + longest:
        raise BookingError(f"One waits at most {format_duration(longest)}; give a latest start within that.", field="not_after")
    return value


def _gpus(server: Server, gpus: int | str | None, *, shares: bool = False) -> int | None:
    """The number asked for (None: the whole server; 0 with shares: none), checked against what the server has."""
    if gpus is None or gpus == "":
        return 0 if shares else None
    try:
        gpus = int(gpus)
    except (TypeError, ValueError):
        gpus = -1
    if gpus == 0 and shares:
        return 0
    count = Device.objects.filter(server=server, active=True).count()
    if count == 0:
        raise BookingError(f"{server.name} has no GPUs; wait for the whole server instead (leave out the number).", field="gpus")
    if not 1 <= gpus <= count:
        raise BookingError(f"Ask for 1 to {count} GPUs on {server.name}, or for the whole server.", field="gpus")
    return gpus


def _check_amounts(server: Server, gpus: int | None, cpu_cores: int, memory_gib: int) -> None:
    """Amounts belong with GPUs or alone, on a server that declares them, within what it has."""
    if gpus is None:
        raise BookingError("A whole server comes with all its cores and memory: leave out the amounts.", field="cpu_cores")
    for field, asked in (("cpu_cores", cpu_cores), ("memory_gib", memory_gib)):
        if not asked:
            continue
        declared = getattr(server, field)
        name = "CPU cores" if field == "cpu_cores" else "GiB of memory"
        if declared is None:
            raise BookingError(f"Server {server.name} has no pooled {name} to book; wait for its GPUs or the whole server.", field=field)
        if asked > declared:
            raise BookingError(f"Server {server.name} has {declared} {name} in all; you asked for {asked}.", field=field)


def _wanted(text: str) -> str:
    """The GPUs the member picked, as a device set; something unreadable is left out (it only words an offer)."""
    try:
        return format_device_set(parse_device_set(text))[:200] if text else ""
    except ParseError:
        return ""


def _close(entry: WaitlistEntry, state: str, now: datetime) -> None:
    entry.state = state
    entry.token = ""
    entry.closed_at = now
    entry.save(update_fields=["state", "token", "closed_at"])


# --- matching ------------------------------------------------------------------------------------


def match(*, server_id: int | None = None, room_id: int | None = None, now: datetime | None = None) -> list[WaitlistEntry]:
    """Offer what is free now on one server or room to the first entries it fits; returns the entries offered.

    Also ends what is due: offers that ran out (back of the line, or lapsed) and entries past their latest start.
    """
    now = now or timezone.now()
    where = Q(server_id=server_id) if server_id is not None else Q(room_id=room_id)
    offered = []
    with transaction.atomic():
        if not _lock_resource(server_id, room_id):
            return []  # another worker is matching this resource right now; what it misses, the sweep sees
        entries = list(
            WaitlistEntry.objects.select_for_update().filter(where, state__in=WaitlistEntry.OPEN).order_by("queued_at", "pk")
        )
        if not entries:
            return []
        retired = set(
            get_user_model().objects.filter(pk__in={e.user_id for e in entries}, is_active=False).values_list("pk", flat=True)
        )
        for entry in entries:
            if entry.user_id in retired:
                _close(entry, WaitlistEntry.State.WITHDRAWN, now)  # a retired account must not hold up the line
                continue
            _end_what_is_due(entry, now)
        entries = sorted((e for e in entries if e.is_open), key=lambda e: (e.queued_at, e.pk))
        waiting = [e for e in entries if e.state == WaitlistEntry.State.WAITING]
        if not waiting:
            return []
        free = _FreeNow(server_id, room_id, now, max(e.length for e in waiting))
        for entry in entries:
            if entry.state == WaitlistEntry.State.OFFERED:
                free.reserve(entry)
        for entry in waiting:
            devices = free.take(entry)
            if devices is not None:
                _offer(entry, devices, now)
                offered.append(entry)
    return offered


def match_all(now: datetime | None = None) -> int:
    """Beat, every minute: match every server and room with open entries; returns how many entries were offered."""
    now = now or timezone.now()
    open_entries = WaitlistEntry.objects.filter(state__in=WaitlistEntry.OPEN)
    servers = set(open_entries.filter(server__isnull=False).values_list("server_id", flat=True))
    rooms = set(open_entries.filter(room__isnull=False).values_list("room_id", flat=True))
    count = 0
    for server_id in sorted(servers):
        count += len(match(server_id=server_id, now=now))
    for room_id in sorted(rooms):
        count += len(match(room_id=room_id, now=now))
    return count


def _end_what_is_due(entry: WaitlistEntry, now: datetime) -> None:
    # An offer always has its end (_offer sets both); the None test is for mypy.
    if entry.state == WaitlistEntry.State.OFFERED and entry.offer_expires_at is not None and entry.offer_expires_at <= now:
        entry.ignored_offers += 1
        if entry.ignored_offers >= settings.WAITLIST_MAX_IGNORED_OFFERS or entry.not_after <= now:
            entry.save(update_fields=["ignored_offers"])
            _lapse(entry, now, "you let its offers run out")
            return
        # Back of the line: it waits on, but a member who does not answer no longer blocks others.
        entry.state, entry.token, entry.queued_at = WaitlistEntry.State.WAITING, "", now
        entry.offered_devices, entry.offer_expires_at = "", None
        entry.save(update_fields=["state", "token", "queued_at", "offered_devices", "offer_expires_at", "ignored_offers"])
    elif entry.state == WaitlistEntry.State.WAITING and entry.not_after <= now:
        _lapse(entry, now, "nothing freed up before its latest start")


def _lapse(entry: WaitlistEntry, now: datetime, why: str) -> None:
    _close(entry, WaitlistEntry.State.LAPSED, now)
    waitlist_changed.send(WaitlistEntry, entry=entry, event="lapsed", why=why)


def _offer(entry: WaitlistEntry, devices: list[int], now: datetime) -> None:
    entry.state = WaitlistEntry.State.OFFERED
    entry.offered_devices = format_device_set(devices) if devices else ""
    entry.offered_at = now
    entry.offer_expires_at = now + offer_length()
    entry.offers += 1
    entry.token = secrets.token_urlsafe(24)
    entry.save(update_fields=["state", "offered_devices", "offered_at", "offer_expires_at", "offers", "token"])
    waitlist_changed.send(WaitlistEntry, entry=entry, event="offered")


class _FreeNow:
    """What of one server or room is free from now, read in one query; open offers reserve their part."""

    def __init__(self, server_id: int | None, room_id: int | None, now: datetime, longest: timedelta) -> None:
        self.now = now
        self.room_id = room_id
        horizon = now + offer_length() + longest
        if room_id is not None:
            units = Unit.objects.filter(room_id=room_id)
        else:
            assert server_id is not None, "match() is given a server or a room"
            units = Unit.objects.filter(server_id=server_id)
        self.units = {
            unit_id: (kind, index)
            for unit_id, kind, index, active in units.values_list("pk", "kind", "device__index", "device__active")
            if kind != Unit.Kind.GPU or active
        }
        # Busy until when, per unit, over the longest window asked; and share-only bookings (no units).
        self.busy: dict[int, list[tuple[datetime, datetime]]] = {}
        for unit_id, start, end in Allocation.objects.active().overlapping(now, horizon).filter(
            unit_id__in=list(self.units)
        ).values_list("unit_id", "start", "end"):
            self.busy.setdefault(unit_id, []).append((start, end))
        self.shares: list[tuple[datetime, datetime, bool, int, int]]
        self.pool: Mapping[str, int | None]
        self.shares, self.pool = [], {}
        if server_id is not None:
            # Bookings taking some of the pooled capacities (a whole server takes all of them).
            self.shares = list(
                Booking.objects.holding().overlapping(now, horizon).filter(server_id=server_id)
                .filter(Q(cpu_cores__gt=0) | Q(memory_gib__gt=0) | Q(whole_server=True))
                .values_list("start", "end", "whole_server", "cpu_cores", "memory_gib")
            )
            # django-stubs types the row as a TypedDict, which mypy does not take for a Mapping[str, int | None].
            self.pool = Server.objects.filter(pk=server_id).values("cpu_cores", "memory_gib").first() or {}  # type: ignore[assignment]
        self.reserved_units: set[int] = set()
        self.reserved_all = False
        self.reserved_pool = {"cpu_cores": 0, "memory_gib": 0}

    def _free(self, unit_id: int, window_end: datetime) -> bool:
        return unit_id not in self.reserved_units and not any(start < window_end for start, _ in self.busy.get(unit_id, []))

    def reserve(self, entry: WaitlistEntry) -> None:
        if entry.room_id is not None or entry.gpus is None:
            self.reserved_all = True
            return
        indices = set(parse_device_set(entry.offered_devices)) if entry.offered_devices else set()
        self.reserved_units |= {unit_id for unit_id, (kind, index) in self.units.items() if kind == Unit.Kind.GPU and index in indices}
        self._reserve_pool(entry)

    def _reserve_pool(self, entry: WaitlistEntry) -> None:
        self.reserved_pool["cpu_cores"] += entry.cpu_cores
        self.reserved_pool["memory_gib"] += entry.memory_gib

    def _pool_fits(self, entry: WaitlistEntry, window_end: datetime) -> bool:
        """The entry's CPU cores and memory fit beside what is booked (and offered) until window_end."""
        for field in ("cpu_cores", "memory_gib"):
            asked, capacity = getattr(entry, field), self.pool.get(field)
            if not asked:
                continue
            if capacity is None:
                return False
            intervals = [(a, b, capacity if whole else (cores if field == "cpu_cores" else memory)) for a, b, whole, cores, memory in self.shares]
            peak, _, _ = peak_load(intervals, self.now, window_end)
            if peak + self.reserved_pool[field] + asked > capacity:
                return False
        return True

    def take(self, entry: WaitlistEntry) -> list[int] | None:
        """The GPU indices offered to `entry` ([] for a whole server, a room, or shares alone), reserved; None if it does not fit now."""
        if self.reserved_all:
            return None
        window_end = self.now + offer_length() + entry.length
        if entry.room_id is not None or entry.gpus is None:
            everything_free = all(self._free(unit_id, window_end) for unit_id in self.units)
            if not everything_free or any(start < window_end for start, *_ in self.shares) or any(self.reserved_pool.values()):
                return None
            self.reserved_all = True
            return []
        if not self._pool_fits(entry, window_end):
            return None
        wanted = set(parse_device_set(entry.wanted_devices)) if entry.wanted_devices else set()
        # The GPUs the member picked first, when they are free; then the lowest free ones.
        free = sorted(
            ((index not in wanted, index), unit_id) for unit_id, (kind, index) in self.units.items()
            if kind == Unit.Kind.GPU and self._free(unit_id, window_end)
        )
        # A GPU is not free while the server as a whole is booked (its allocation covers every GPU too).
        if len(free) < entry.gpus:
            return None
        chosen = free[: entry.gpus]
        self.reserved_units |= {unit_id for _, unit_id in chosen}
        self._reserve_pool(entry)
        return sorted(index for (_, index), _ in chosen)


def _lock_resource(server_id: int | None, room_id: int | None) -> bool:
    """Serialize matching of one server or room for this transaction (locking.lock); False if it stays busy."""
    try:
        # In a savepoint: a lock that times out rolls back to it, and the transaction stays usable.
        with transaction.atomic():
            lock(Server(pk=server_id) if server_id is not None else Room(pk=room_id))
    except Busy:
        return False
    return True


# --- claiming ------------------------------------------------------------------------------------


def claim(
    entry: WaitlistEntry, *, by: User, token: str | None = None, source: str = Booking.Source.WEB, now: datetime | None = None,
) -> Booking:
    """Book the offered GPUs (or server, or room) from now for the entry's length; returns the booking.

    Only the entry's own member may claim; `token` (the link's) must be the open offer's when given.
    Raises OfferUnavailable when there is nothing to claim, or the GPUs were booked meanwhile (then
    the entry is back in line at its place), and the booking errors (limits) as they come.
    """
    now = now or timezone.now()
    entry = WaitlistEntry.objects.select_related("user", "server", "room").get(pk=entry.pk)
    if entry.user_id != by.pk:
        raise NotAllowed(f"This offer is for {entry.user.get_username()}; only they can claim it.")
    _check_claimable(entry, token, now)
    spent = entry.token
    try:
        with transaction.atomic():
            # Single use: the first claim spends the token; a second one (or a late one) updates nothing.
            won = WaitlistEntry.objects.filter(
                pk=entry.pk, state=WaitlistEntry.State.OFFERED, token=spent, offer_expires_at__gt=now,
            ).update(state=WaitlistEntry.State.CLAIMED, token="", closed_at=now)
            if not won:
                entry.refresh_from_db()
                _check_claimable(entry, None, now)
                raise OfferUnavailable("This offer was just claimed or withdrawn.")
            booking = create_booking(
                by, start=now, end=now + entry.length, purpose=entry.purpose or "from the waitlist", source=source, now=now,
                server=entry.server, devices=(entry.offered_devices or None) if entry.server_id else None, room=entry.room,
                cpu_cores=entry.cpu_cores, memory_gib=entry.memory_gib,
            )
            WaitlistEntry.objects.filter(pk=entry.pk).update(booking=booking)
    except BookingConflict as conflict:
        back = WaitlistEntry.objects.filter(pk=entry.pk, state=WaitlistEntry.State.OFFERED, token=spent).update(
            state=WaitlistEntry.State.WAITING, token="", offered_devices="", offer_expires_at=None,
        )
        if back:
            _match_after_commit(entry)
        place = position(entry)
        raise OfferUnavailable(
            f"{conflict.message} It was booked directly meanwhile, so the offer is gone; "
            f"you are back in line{f' at place {place}' if place else ''} and will be told when it frees up again."
        ) from None
    return booking


def _check_claimable(entry: WaitlistEntry, token: str | None, now: datetime) -> None:
    from ..templatetags.labres import when

    if entry.state == WaitlistEntry.State.CLAIMED:
        booked = f" (booking #{entry.booking_id})" if entry.booking_id else ""
        raise OfferUnavailable(f"This offer was claimed already{booked}; an offer books once.")
    if entry.state != WaitlistEntry.State.OFFERED:
        raise OfferUnavailable(f"Waitlist entry #{entry.pk} has no open offer (it is {entry.state}).")
    if token is not None and token != entry.token:
        raise OfferUnavailable("This link belongs to an earlier offer that is over; use the latest message, or My bookings.")
    assert entry.offer_expires_at is not None, "an open offer has its end (_offer sets both)"
    if entry.offer_expires_at <= now:
        raise OfferUnavailable(
            f"The offer ran out at {when(entry.offer_expires_at)}; it passes to the next in line."
        )


# --- reads -----------------------------------------------------------------------------------------


def position(entry: WaitlistEntry) -> int | None:
    """1 for the first in line on its server or room, ...; None once the entry is closed."""
    if entry.state not in WaitlistEntry.OPEN:
        return None
    where = Q(server_id=entry.server_id) if entry.server_id else Q(room_id=entry.room_id)
    ahead = WaitlistEntry.objects.filter(where, state__in=WaitlistEntry.OPEN).filter(
        Q(queued_at__lt=entry.queued_at) | Q(queued_at=entry.queued_at, pk__lt=entry.pk)
    )
    return ahead.count() + 1


def with_positions(entries: Iterable[WaitlistEntry]) -> list[WaitlistEntry]:
    """Set `.position` on each entry (None for closed ones) with one query for all their servers and rooms."""
    entries = list(entries)
    servers = {e.server_id for e in entries if e.is_open and e.server_id}
    rooms = {e.room_id for e in entries if e.is_open and e.room_id}
    order = {}
    if servers or rooms:
        lines = WaitlistEntry.objects.filter(Q(server_id__in=servers) | Q(room_id__in=rooms), state__in=WaitlistEntry.OPEN)
        counters: dict[tuple[str, int], int] = {}
        for pk, server_id, room_id in lines.order_by("queued_at", "pk").values_list("pk", "server_id", "room_id"):
            line = ("s", server_id) if server_id else ("r", room_id)
            counters[line] = counters.get(line, 0) + 1
            order[pk] = counters[line]
    for entry in entries:
        entry.position = order.get(entry.pk)  # type: ignore[attr-defined]  # for the pages, not a field
    return entries


def member_entries(user: User, *, include_closed_since: datetime | None = None) -> list[WaitlistEntry]:
    """A member's open entries (and those closed since a moment), soonest joined first, with positions."""
    rows = WaitlistEntry.objects.filter(user=user).select_related("server", "room", "user")
    where = Q(state__in=WaitlistEntry.OPEN)
    if include_closed_since is not None:
        where |= Q(closed_at__gte=include_closed_since)
    return with_positions(rows.filter(where).order_by("created_at", "pk"))


# --- after commit: a worker matches the resource ---------------------------------------------------


def on_booking_changed(sender: type[Booking], booking: Booking, event: str, by: User | None = None, **kwargs: Any) -> None:
    """A cancellation, an early release, a change, or a decline or expiry of a booking awaiting approval may
    free something: match that server or room after commit."""
    if event in ("cancelled", "released", "changed", "declined", "expired"):
        server_id, room_id = booking.server_id, booking.room_id
        transaction.on_commit(lambda: hand_to_worker(server_id=server_id, room_id=room_id))


def _match_after_commit(entry: WaitlistEntry) -> None:
    server_id, room_id = entry.server_id, entry.room_id
    transaction.on_commit(lambda: hand_to_worker(server_id=server_id, room_id=room_id))


def hand_to_worker(*, server_id: int | None = None, room_id: int | None = None) -> None:
    """After commit: ask a worker to match this server or room, if anyone waits there (looked at once the
    change is committed, so a member who joined meanwhile is seen); the minute's sweep does if the broker is down."""
    where = Q(server_id=server_id) if server_id is not None else Q(room_id=room_id)
    if not WaitlistEntry.objects.filter(where, state=WaitlistEntry.State.WAITING).exists():
        return
    from labres.celery import app

    # By name: the task wraps this module (reservations.tasks imports it), not the other way.
    enqueue_after_commit(app.tasks["reservations.tasks.match_waitlist"], server_id, room_id)  # after commit already: handed over at once
