"""Times as people type them on the command line, and as the CLI shows them (in this host's zone)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from .errors import CliError

TYPE_CHECKING = False  # typing is for mypy only: the CLI starts fast without importing it
if not TYPE_CHECKING:

    def overload(function):  # all that typing.overload does at run time
        return function
else:
    from typing import overload

_CLOCK = re.compile(r"^(?:(today|tomorrow)\s+)?(\d{1,2}):(\d{2})$", re.IGNORECASE)
TIME_EXAMPLES = "now, 14:00, tomorrow 09:30 or 2026-11-24T14:00"


def local_now() -> datetime:
    return datetime.now().astimezone()


def parse_time(text: str | None, *, now: datetime, after: datetime | None = None) -> tuple[str, datetime]:
    """Read 'now', '14:00', 'tomorrow 9:30' or ISO '2026-11-24T14:00' into (value to send, local moment).

    'HH:MM' alone is the next such time after `after` (default: now), so '--end 12:00' after
    a start tomorrow at 10:00 is tomorrow at 12:00. Wall-clock times go out without an
    offset: the server reads them in the member's time zone. 'now' goes out in UTC.
    """
    raw = (text or "").strip()
    if raw.lower() == "now":
        return to_api(now), now.replace(tzinfo=None)
    match = _CLOCK.match(raw)
    if match:
        day, hour, minute = match.group(1), int(match.group(2)), int(match.group(3))
        if hour > 23 or minute > 59:
            raise CliError(f"'{raw}' is not a time; use e.g. {TIME_EXAMPLES}.")
        base = (after or now.replace(tzinfo=None)).replace(second=0, microsecond=0)
        if day:
            moment = datetime.combine(now.date(), datetime.min.time()).replace(hour=hour, minute=minute)
            if day.lower() == "tomorrow":
                moment += timedelta(days=1)
        else:
            moment = base.replace(hour=hour, minute=minute)
            if moment <= base:
                moment += timedelta(days=1)
        return moment.isoformat(timespec="minutes"), moment
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise CliError(f"'{raw}' is not a time; use e.g. {TIME_EXAMPLES}.") from None
    if moment.tzinfo is not None:
        try:
            return moment.isoformat(), moment.astimezone().replace(tzinfo=None)
        except OverflowError:  # year 9999 west of here, or year 1 east of it
            raise CliError(f"'{raw}' is out of range; use e.g. {TIME_EXAMPLES}.") from None
    return moment.isoformat(timespec="minutes" if not moment.second and not moment.microsecond else "seconds"), moment


def to_api(moment: datetime) -> str:
    """An aware datetime as the API writes them: UTC with Z."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@overload
def from_api(text: str) -> datetime: ...
@overload
def from_api(text: None) -> None: ...
def from_api(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def show(moment: datetime, now: datetime) -> str:
    """'14:30' today, 'tomorrow 09:00', 'Wed 10:00' within a week, else 'Wed 02 Dec 10:00' (this host's zone)."""
    local, today = moment.astimezone(), now.astimezone().date()
    days = (local.date() - today).days
    if days == 0:
        return f"{local:%H:%M}"
    if days == 1:
        return f"tomorrow {local:%H:%M}"
    if 1 < days < 7:
        return f"{local:%a %H:%M}"
    return f"{local:%a %d %b %H:%M}"


def show_span(start: datetime, end: datetime, now: datetime) -> str:
    """'10:00–12:00', 'tomorrow 10:00–12:00' or 'Wed 22:00–Thu 02:00'."""
    first = show(start, now)
    if start.astimezone().date() == end.astimezone().date():
        return f"{first}–{end.astimezone():%H:%M}"
    return f"{first}–{show(end, now)}"
