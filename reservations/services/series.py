"""Recurring bookings: a repeat rule read into dates, each booked through create_booking.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..errors import (
    BookingError,
    Busy,
    NotAllowed,
    NotPending,
    Refusal,
    SeriesConflict,
    WrongState,
)
from ..models import Booking, BookingSeries
from ..parsing import ParseError, parse_duration
from ..signals import in_series, series_changed
from .approval import approve_booking, decline_booking, pending_dates
from .audit import attach_series
from .bookings import cancel_booking, create_booking
from .targets import resolve_target
from .validation import check_purpose, check_reason, check_times

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from django.contrib.auth.models import User

    from ..models import Room, Server


@dataclass(frozen=True)
class SeriesResult:
    """What create_series booked and skipped, or what cancel_series cancelled and left running."""

    series: BookingSeries
    bookings: list[Booking]  # booked (create) or cancelled (cancel), soonest first
    skipped: list[Refusal] | list[Booking]  # Refusal per occurrence not booked (create); running bookings left alone (cancel)


@dataclass(frozen=True)
class SeriesPlan:
    """The dates a repeat rule gives, before anything is booked: starts are local (naive, in `zone`)."""

    rule: str
    until: date | None
    zone: ZoneInfo
    local: datetime
    starts: list[datetime]

    def windows(self, length: timedelta) -> list[tuple[datetime, datetime]]:
        """Each date as (start, end) in UTC."""
        return [(begin, begin + length) for begin in (local_start.astimezone(UTC) for local_start in self.starts)]


def plan_series(
    user: User, *, start: datetime, end: datetime, repeat: str | None = None, until: date | None = None, count: int | None = None,
    time_zone: str | None = None, now: datetime | None = None,
) -> SeriesPlan:
    """The dates of a series (see create_series), checked as create_series checks them; raises BookingError."""
    from ..recurrence import occurrences, parse_repeat, rule_parts

    now = now or timezone.now()
    check_times(start, end, now=now)
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


def series_horizon() -> timedelta:
    """How far ahead a series may reach: as far as one may book (BOOKING_MAX_AHEAD, a year by default)."""
    return parse_duration(settings.BOOKING_MAX_AHEAD)


def create_series(
    user: User, *, start: datetime, end: datetime, repeat: str | None = None, until: date | None = None, count: int | None = None,
    purpose: str = "", server: Server | str | None = None, devices: str | Sequence[int] | None = None, room: Room | str | None = None,
    cpu_cores: int | str | None = 0, memory_gib: int | str | None = 0, source: str = Booking.Source.WEB, on_conflict: str = "ask",
    time_zone: str | None = None, now: datetime | None = None,
) -> SeriesResult:
    """Book [start, end) again and again by a repeat rule ('weekly', 'weekdays', an RRULE) until a date or
    `count` times; each occurrence passes create_booking's checks. Raises BookingError.

    on_conflict="ask": if any occurrence is refused, nothing is written and SeriesConflict lists each.
    "skip": the others are booked and the refused ones reported in the result (SeriesConflict if none fits).
    The rule is read in `time_zone` (default: the member's), so occurrences keep their wall-clock time.
    One "series_created" notification tells of all of them.
    """
    now = now or timezone.now()
    if on_conflict not in ("ask", "skip"):
        raise BookingError("on_conflict is 'ask' (book nothing if a date is taken) or 'skip' (book the others).", field="on_conflict")
    plan = plan_series(user, start=start, end=end, repeat=repeat, until=until, count=count, time_zone=time_zone, now=now)
    purpose = check_purpose(purpose)
    rule, until, zone, local = plan.rule, plan.until, plan.zone, plan.local
    length = end - start
    resolve_target(server=server, devices=devices, room=room)  # an unknown server is one error, not one per date
    with transaction.atomic():
        series = BookingSeries.objects.create(
            user=user, rule=rule, first_date=local.date(), start_time=local.time().replace(tzinfo=None), length=length,
            time_zone=str(zone), until=until, purpose=purpose,
        )
        booked: list[Booking]
        refused: list[Refusal]
        booked, refused = [], []
        with in_series():  # one message for the series, not one per date
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
        attach_series(booked, series)
        series_changed.send(BookingSeries, series=series, event="series_created", by=user, bookings=booked, skipped=refused)
    return SeriesResult(series=series, bookings=booked, skipped=refused)


def cancel_series(series: BookingSeries, *, by: User, now: datetime | None = None) -> SeriesResult:
    """Cancel every occurrence of a series that has not started; a running one is left alone (released by hand).

    Owner or staff only. One "series_cancelled" notification tells of all of them.
    """
    now = now or timezone.now()
    with transaction.atomic():
        series = BookingSeries.objects.select_for_update().select_related("user").get(pk=series.pk)
        if series.user_id != by.pk and not by.is_staff:
            raise NotAllowed(f"Series #{series.pk} belongs to {series.user.get_username()}; only they or staff can cancel it.")
        current = list(series.bookings.filter(status__in=Booking.LIVE, end__gt=now).order_by("start"))  # pending dates too
        running = [booking for booking in current if booking.start <= now]
        with in_series():
            cancelled = [cancel_booking(booking, by=by, now=now) for booking in current if booking.start > now]
        if not cancelled:
            still = f"; booking #{running[0].pk} is running: release it to end it now" if running else ""
            raise WrongState(f"Series #{series.pk} has nothing left to cancel{still}.")
        series_changed.send(BookingSeries, series=series, event="series_cancelled", by=by, bookings=cancelled, skipped=running)
    return SeriesResult(series=series, bookings=cancelled, skipped=running)


def decide_series(series: BookingSeries, *, by: User, approve: bool, reason: str = "", now: datetime | None = None) -> SeriesResult:
    """Staff: approve (or decline) every date of a series still awaiting approval, in one go.

    Each date is decided as approve_booking / decline_booking would; dates already decided or
    started are left as they are. One message tells the member of all of them ("approved" or
    "declined" with the series' dates), not one per date. Raises NotAllowed, NotPending.
    """
    now = now or timezone.now()
    if not getattr(by, "is_staff", False):
        raise NotAllowed(f"Only staff can {'approve' if approve else 'decline'} bookings.")
    reason = check_reason(reason)
    with transaction.atomic():
        series = BookingSeries.objects.select_for_update(of=("self",)).select_related("user").get(pk=series.pk)
        pending = list(pending_dates(series, now))
        if not pending:
            raise NotPending(f"Series #{series.pk} has no dates awaiting approval; each was decided, or has started.")
        with in_series():
            decided = [
                approve_booking(booking, by=by, now=now) if approve else decline_booking(booking, by=by, reason=reason, now=now)
                for booking in pending
            ]
        event = "series_approved" if approve else "series_declined"
        series_changed.send(BookingSeries, series=series, event=event, by=by, bookings=decided, reason=reason)
    return SeriesResult(series=series, bookings=decided, skipped=[])


def _zone_of(user: User, name: str | None = None) -> ZoneInfo:
    """The zone a series' rule is read in: the one given, else the member's, else the lab's."""
    import zoneinfo

    name = name or getattr(getattr(user, "profile", None), "time_zone", "") or settings.TIME_ZONE
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise BookingError(f"'{name}' is not a time zone; write e.g. Europe/Berlin.", field="time_zone") from None
