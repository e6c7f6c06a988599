"""Repeat rules for booking series: what members type ("weekly on tue,thu"), RFC 5545 RRULEs, and their dates.

A rule is kept as a normalized RRULE without UNTIL ("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH",
perhaps with COUNT); the last date is the series' own `until`, a date in the member's zone.
Occurrences are wall-clock times in that zone: 10:00 in Berlin stays 10:00 across DST (a time
that does not exist on the day clocks go forward, 02:30, is read with the offset before the change,
i.e. 03:30; one that happens twice when they go back is the first of the two).
As in RFC 5545 (and python-dateutil), the start itself is an occurrence only if the rule matches it
("weekly on tue" from a Monday starts on the Tuesday).
Dates are found by walking the days up to a horizon (how far ahead one may book), never further.
"""
import re
from calendar import monthrange
from collections.abc import Callable
from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from .parsing import ParseError

DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WEEKDAYS = DAYS[:5]
FREQUENCIES = {"DAILY": "day", "WEEKLY": "week", "MONTHLY": "month", "YEARLY": "year"}
SHOWN_PARTS = {"FREQ", "INTERVAL", "BYDAY", "COUNT"}  # what describe() puts in words
# What a raw RRULE may say: a booking starts at one wall-clock time, so no sub-daily rules,
# and the end is the series' until date or COUNT.
ALLOWED_PARTS = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "COUNT", "UNTIL", "WKST"}
MAX_INTERVAL = 52
MAX_COUNT = 10_000  # far above any cap; only keeps absurd numbers out
MAX_TEXT = 200  # what a member types or an RRULE says; longer is not a repeat

EXAMPLES = "e.g. daily, weekdays, weekly, every 2 weeks, weekly on tue,thu, or an RRULE like FREQ=WEEKLY;BYDAY=TU"
_UNITS = {
    "day": "DAILY", "days": "DAILY", "week": "WEEKLY", "weeks": "WEEKLY",
    "month": "MONTHLY", "months": "MONTHLY", "year": "YEARLY", "years": "YEARLY",
}
_SIMPLE = {
    "daily": ("DAILY", 1), "every day": ("DAILY", 1),
    "weekly": ("WEEKLY", 1), "every week": ("WEEKLY", 1),
    "biweekly": ("WEEKLY", 2), "fortnightly": ("WEEKLY", 2),
    "monthly": ("MONTHLY", 1), "every month": ("MONTHLY", 1),
    "yearly": ("YEARLY", 1), "every year": ("YEARLY", 1),
}
_EVERY_N = re.compile(r"^every\s+(\d+)\s+(days?|weeks?|months?|years?)$", re.ASCII)


def parse_repeat(text: str | None) -> tuple[str | None, date | None]:
    """Read 'weekly', 'weekdays', 'every 2 weeks', 'weekly on tue,thu' or an RRULE into a normalized
    RRULE (without UNTIL; UNTIL found in an RRULE is returned apart): (rule, until date or None).

    '' and 'never' give (None, None): no repeat.
    """
    _check_length(text)
    raw = " ".join((text or "").split())
    lowered = raw.lower()
    if lowered in ("", "never", "no", "none", "once"):
        return None, None
    if lowered.startswith(("rrule:", "freq=")):
        return parse_rrule(raw)
    head, on, days = lowered.partition(" on ")
    head = head.strip()
    if head in ("weekdays", "every weekday", "on weekdays"):
        if on:
            raise ParseError(f"'{raw}' names days twice; write 'weekdays' or 'weekly on mon,wed'.")
        return format_rule("WEEKLY", 1, WEEKDAYS), None
    if head in _SIMPLE:
        freq, interval = _SIMPLE[head]
    else:
        match = _EVERY_N.match(head)
        if not match:
            raise ParseError(f"'{raw}' is not a repeat I can read; write {EXAMPLES}.")
        freq, interval = _UNITS[match.group(2)], int(match.group(1))
        if not 1 <= interval <= MAX_INTERVAL:
            raise ParseError(f"'{raw}': repeat every 1 to {MAX_INTERVAL} {match.group(2).rstrip('s')}s.")
    byday: tuple[str, ...] = ()
    if on:
        if freq != "WEEKLY":
            raise ParseError(f"'{raw}': days of the week go with a weekly repeat, e.g. 'weekly on tue,thu'.")
        byday = _parse_days(days)
    return format_rule(freq, interval, byday), None


def _parse_days(text: str) -> tuple[str, ...]:
    found: list[str] = []
    for token in re.split(r"\s*(?:,|\band\b|&|\s)\s*", text.strip()):
        if not token:
            continue
        code = _day_code(token)
        if code is None:
            raise ParseError(f"'{token}' is not a day of the week; write e.g. mon, tue or thursday.")
        if code not in found:
            found.append(code)
    if not found:
        raise ParseError("Name the days after 'on', e.g. 'weekly on tue,thu'.")
    return tuple(sorted(found, key=DAYS.index))


def _day_code(token: str) -> str | None:
    token = token.lower()
    for code, name in zip(DAYS, DAY_NAMES):
        if len(token) >= 2 and name.lower().startswith(token) or token == code.lower():
            return code
    return None


def parse_rrule(text: str | None) -> tuple[str, date | None]:
    """Read an RFC 5545 RRULE ('RRULE:FREQ=WEEKLY;BYDAY=TU;UNTIL=20261215') into (normalized rule, until date or None)."""
    _check_length(text)
    body = (text or "").strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    parts: dict[str, str] = {}
    for piece in filter(None, body.split(";")):
        name, sep, value = piece.partition("=")
        name = name.strip().upper()
        if not sep or not value.strip():
            raise ParseError(f"'{piece}' in the RRULE is not NAME=value; write e.g. FREQ=WEEKLY;BYDAY=TU.")
        if name not in ALLOWED_PARTS:
            raise ParseError(f"The RRULE part {name} is not supported here; use {', '.join(sorted(ALLOWED_PARTS))}.")
        if name in parts:
            raise ParseError(f"The RRULE names {name} twice.")
        parts[name] = value.strip().upper()
    freq = parts.pop("FREQ", None)
    if freq not in FREQUENCIES:
        raise ParseError(f"The RRULE needs FREQ=DAILY, WEEKLY, MONTHLY or YEARLY (bookings repeat at one time of day); got {freq or 'none'}.")
    interval = _number(parts.pop("INTERVAL", "1"), "INTERVAL", 1, MAX_INTERVAL)
    until = _until(parts.pop("UNTIL")) if "UNTIL" in parts else None
    if "COUNT" in parts and until is not None:
        raise ParseError("An RRULE has UNTIL or COUNT, not both.")
    byday: tuple[str, ...] = ()
    if "BYDAY" in parts:
        codes = [code.strip() for code in parts.pop("BYDAY").split(",")]
        bad = [code for code in codes if code not in DAYS]
        if bad:
            raise ParseError(f"BYDAY={','.join(bad)} is not supported; name plain days: {','.join(DAYS)}.")
        byday = tuple(sorted(set(codes), key=DAYS.index))
    extra = dict(parts)
    if "COUNT" in extra:
        extra["COUNT"] = str(_number(extra["COUNT"], "COUNT", 1, MAX_COUNT))
    for name in ("BYMONTHDAY", "BYMONTH"):
        if name in extra:
            low, high = (-31, 31) if name == "BYMONTHDAY" else (1, 12)
            values = [_number(value, name, low, high) for value in extra[name].split(",")]
            if 0 in values:
                raise ParseError(f"{name}=0 is not a day; count from 1 (or back from -1).")
            extra[name] = ",".join(str(value) for value in values)
    if "WKST" in extra and extra["WKST"] not in DAYS:
        raise ParseError(f"WKST={extra['WKST']} is not a day; write e.g. WKST=MO.")
    return format_rule(freq, interval, byday, extra), until


def _check_length(text: str | None) -> None:
    if text and len(text) > MAX_TEXT:
        raise ParseError(f"The repeat is {len(text)} characters long; write it in at most {MAX_TEXT}, {EXAMPLES}.")


def _number(value: str, name: str, low: int, high: int) -> int:
    if not re.fullmatch(r"-?\d{1,6}", value or ""):
        raise ParseError(f"{name}={value} is not a whole number.")
    number = int(value)
    if not low <= number <= high:
        raise ParseError(f"{name} goes from {low} to {high}; got {number}.")
    return number


def _until(value: str) -> date:
    match = re.fullmatch(r"(\d{4})(\d{2})(\d{2})(?:T\d{6}Z?)?", value)
    try:
        if match:
            return date(*map(int, match.groups()))
    except ValueError:
        pass
    raise ParseError(f"UNTIL={value} is not a date; write e.g. UNTIL=20261215.")


def format_rule(freq: str, interval: int = 1, byday: tuple[str, ...] = (), extra: dict[str, str] | None = None) -> str:
    """The normalized RRULE text: FREQ first, then INTERVAL (if not 1), BYDAY, and the rest sorted."""
    parts = [f"FREQ={freq}"]
    if interval != 1:
        parts.append(f"INTERVAL={interval}")
    if byday:
        parts.append(f"BYDAY={','.join(byday)}")
    parts += [f"{name}={value}" for name, value in sorted((extra or {}).items())]
    return ";".join(parts)


def rule_parts(rule: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in rule.split(";"))


def describe(rule: str, *, at: str = "", until: date | None = None) -> str:
    """'every week on Tuesday', 'every 2 weeks on Tuesday and Thursday', 'every weekday';
    `at` (' at 10:00') and `until` (a date: ' until 15 Dec 2026') are added when given."""
    parts = rule_parts(rule)
    freq, interval = parts["FREQ"], int(parts.get("INTERVAL", "1"))
    unit = FREQUENCIES[freq]
    days = tuple(parts["BYDAY"].split(",")) if "BYDAY" in parts else ()
    if freq == "WEEKLY" and interval == 1 and days == WEEKDAYS:
        text = "every weekday"
    else:
        text = f"every {unit}" if interval == 1 else f"every {interval} {unit}s"
        if days:
            names = [DAY_NAMES[DAYS.index(code)] for code in days]
            text += " on " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1])
    others = ";".join(f"{name}={value}" for name, value in parts.items() if name not in SHOWN_PARTS)
    if others:
        text += f" ({others})"
    text += at
    if "COUNT" in parts:
        text += f", {parts['COUNT']} times"
    if until is not None:
        text += f" until {until.day} {until:%b %Y}"
    return text


def occurrences(rule: str, *, first: datetime, until: date | None = None, zone: str | tzinfo, limit: int, horizon: date) -> list[datetime]:
    """The occurrences' starts (aware, in `zone`) from `first` (a naive wall-clock datetime), up to the end
    of the `until` date; at most `limit` + 1, so a caller can tell that there are more than `limit`.

    Only the days from `first` to the `horizon` date are looked at, one by one: the work is bounded by
    the horizon whatever the rule says (python-dateutil would walk to the year 9999 looking for a
    30 February, even given an UNTIL: it compares only matching dates with it). A caller tells a rule that goes on past the horizon by its COUNT or its until.
    """
    parts = rule_parts(rule)
    if until is None and "COUNT" not in parts:
        raise ParseError("Say until when the booking repeats (a date), or how many times.")
    last = horizon if until is None else min(until, horizon)
    wanted = min(int(parts.get("COUNT", MAX_COUNT)), limit + 1)
    matches = _day_test(parts, first.date())
    zone = ZoneInfo(zone) if isinstance(zone, str) else zone
    starts: list[datetime] = []
    day = first.date()
    while day <= last and len(starts) < wanted:
        if matches(day):
            starts.append(datetime.combine(day, first.time(), tzinfo=zone))
        day += timedelta(days=1)
    return starts


def matches_between(rule: str | dict[str, str], *, first: date, start: date, end: date) -> bool:
    """Whether the rule (an RRULE's parts; BYDAY may be ordinal, '2MO', in a monthly or yearly rule) has a date
    from `start` to `end` (dates), counting periods from `first`. COUNT is not counted; UNTIL is.

    Looks at the days from start to end only, so it costs the same whatever the rule: a calendar import
    asks it before python-dateutil expands a rule that may never match (and would then run to 9999).
    """
    parts = rule_parts(rule) if isinstance(rule, str) else rule
    if "UNTIL" in parts:
        end = min(end, _until(parts["UNTIL"][:8]))
    matches = _day_test(parts, first)
    day = max(start, first)
    while day <= end:
        if matches(day):
            return True
        day += timedelta(days=1)
    return False


def _day_test(parts: dict[str, str], first: date) -> Callable[[date], bool]:
    """Whether a day (on or after `first`) is an occurrence of the rule: RFC 5545's reading, as python-dateutil's."""
    freq, interval = parts["FREQ"], int(parts.get("INTERVAL", "1"))
    codes = parts["BYDAY"].split(",") if "BYDAY" in parts else []
    weekdays = {DAYS.index(code) for code in codes if code in DAYS}
    # '2MO': the second Monday of the month (of the year in a yearly rule without BYMONTH); '-1FR': the last Friday.
    nth = {(DAYS.index(code[-2:]), int(code[:-2])) for code in codes if code not in DAYS}
    monthdays = {int(value) for value in parts["BYMONTHDAY"].split(",")} if "BYMONTHDAY" in parts else set()
    months = {int(value) for value in parts["BYMONTH"].split(",")} if "BYMONTH" in parts else set()
    in_year = freq == "YEARLY" and not months
    if not weekdays and not nth and not monthdays:  # the first date's own day stands in for the days not named
        if freq == "YEARLY":
            months, monthdays = months or {first.month}, {first.day}
        elif freq == "MONTHLY":
            monthdays = {first.day}
        elif freq == "WEEKLY":
            weekdays = {first.weekday()}
    # Weeks begin on WKST; the first period is the one holding the first date.
    week_of_first = first - timedelta(days=(first.weekday() - DAYS.index(parts.get("WKST", "MO"))) % 7)
    periods = {
        "DAILY": lambda day: (day - first).days,
        "WEEKLY": lambda day: (day - week_of_first).days // 7,
        "MONTHLY": lambda day: (day.year - first.year) * 12 + day.month - first.month,
        "YEARLY": lambda day: day.year - first.year,
    }
    period = periods[freq]

    def on_a_named_day(day: date) -> bool:
        if not weekdays and not nth:
            return True
        if day.weekday() in weekdays:
            return True
        if in_year:
            position, length = day.timetuple().tm_yday, 366 if monthrange(day.year, 2)[1] == 29 else 365
        else:
            position, length = day.day, monthrange(day.year, day.month)[1]
        return (day.weekday(), (position - 1) // 7 + 1) in nth or (day.weekday(), -((length - position) // 7 + 1)) in nth

    def matches(day: date) -> bool:
        if period(day) % interval or (months and day.month not in months) or not on_a_named_day(day):
            return False
        if monthdays:
            from_end = day.day - monthrange(day.year, day.month)[1] - 1  # -1 is the month's last day
            return day.day in monthdays or from_end in monthdays
        return True

    return matches
