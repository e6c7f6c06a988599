"""Checks of what a member asks for that need no other booking: times, texts, amounts.
"""
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from ..errors import BookingError
from ..models import Booking
from ..parsing import EARLIEST, format_duration, parse_duration
from ..text import text_problem


def check_text(value: str | None, *, field: str, label: str, max_length: int | None) -> str:
    """`value` stripped, if it is one line of plain text of at most `max_length` characters; else BookingError."""
    value = (value or "").strip()
    problem = text_problem(value, label=label, max_length=max_length)
    if problem:
        raise BookingError(problem, field=field)
    return value


def check_times(start: datetime, end: datetime, *, now: datetime, allow_past_start: bool = False) -> None:
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
            f"Bookings start at most {format_duration(ahead)} ahead, by {format_day(now + ahead)}; this one would start on {format_day(start)}.",
            field="start",
        )
    longest = parse_duration(settings.BOOKING_MAX_LENGTH)
    if end - start > longest:
        raise BookingError(
            f"A booking may last at most {format_duration(longest)}; this one would last {format_duration(end - start)}.",
            field="end",
        )


def check_purpose(purpose: str | None) -> str:
    """A booking's (or series', or waitlist entry's) purpose: one line of plain text, as long as the column holds."""
    return check_text(purpose, field="purpose", label="purpose", max_length=Booking._meta.get_field("purpose").max_length)


def check_reason(reason: str | None) -> str:
    """Staff's reason for a decline, shown to the member."""
    return check_text(reason, field="reason", label="reason", max_length=Booking._meta.get_field("decision_note").max_length)


def format_day(moment: datetime) -> str:
    """'31 Dec 2027' in the active zone; a date too far off to convert is written as it was given."""
    try:
        moment = timezone.localtime(moment)
    except OverflowError:
        pass
    return f"{moment.day} {moment:%b} {moment.year}"


def check_amount(value: int | str | None, field: str) -> int:
    try:
        amount = int(value or 0)
    except (TypeError, ValueError):
        amount = -1
    if amount < 0:
        raise BookingError(f"{'CPU cores' if field == 'cpu_cores' else 'Memory (GiB)'} must be a whole number, 0 or more.", field=field)
    return amount
