"""Parsers for what people type: device sets (0-2,5), targets (thalys:0-1) and durations (1h30m).

Each raises ParseError with a message that names the bad part and shows what would be right.
"""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime, time, timedelta, tzinfo

TYPE_CHECKING = False  # typing is for mypy only: the CLI imports this module, and starts fast without typing
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

# Nobody books a GPU for ten years; the cap also keeps huge numbers from overflowing timedelta.
MAX_DURATION = timedelta(days=3650)
MAX_DEVICE_INDEX = 1023
# What people type is short; a longer text is refused before it is read, so reading costs little.
MAX_DEVICE_SET_LENGTH = 500
MAX_DURATION_LENGTH = 50
# JSON from a request: what the API and Slack send nests a few levels; Python's parser would recurse
# until it fails.
MAX_JSON_DEPTH = 32

# The instants labres reads at all (UTC): outside them a zone's offset or a length added could
# overflow Python's datetime (years 1 to 9999), and no lab books there. The database refuses
# bookings outside them too (the constraints on Booking and Allocation).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


class ParseError(ValueError):
    """Input that cannot be read; str(error) is the message for the user."""


_RANGE = re.compile(r"^(\d+)(?:\s*-\s*(\d+))?$", re.ASCII)


def parse_device_set(text: str | None) -> list[int]:
    """Read a device set like '0-2,5,7-9' into a sorted list of distinct indices."""
    text = (text or "").strip()
    if not text:
        raise ParseError("The device set is empty; write GPU indices like 0, 0-3 or 0-2,5.")
    if len(text) > MAX_DEVICE_SET_LENGTH:
        raise ParseError(f"The device set is {len(text)} characters long; write it in at most {MAX_DEVICE_SET_LENGTH}, e.g. 0-3 or 0-2,5.")
    indices: set[int] = set()
    for token in text.split(","):
        token = token.strip()
        match = _RANGE.match(token)
        if not match:
            raise ParseError(f"'{token}' is not a GPU index or range; write e.g. 0, 0-3 or 0-2,5.")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if low > high:
            raise ParseError(f"'{token}' is a backwards range; write it low to high, e.g. {high}-{low}.")
        if high > MAX_DEVICE_INDEX:
            raise ParseError(f"'{token}' is out of range; GPU indices go from 0 to {MAX_DEVICE_INDEX}.")
        indices.update(range(low, high + 1))
    return sorted(indices)


def format_device_set(indices: Iterable[int]) -> str:
    """Write indices the short way: [0, 1, 2, 5] -> '0-2,5'."""
    parts: list[str] = []
    run_start = previous = None
    for index in sorted(set(indices)):
        if previous is not None and index == previous + 1:
            previous = index
            continue
        if run_start is not None and previous is not None:  # set together: both or neither
            parts.append(_format_run(run_start, previous))
        run_start = previous = index
    if run_start is not None and previous is not None:
        parts.append(_format_run(run_start, previous))
    return ",".join(parts)


def _format_run(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}-{high}"


# How a booking's target is written for people; one function, a few named spellings:
TYPED = "typed"  # as people type it: thalys:0-1, thalys (whole server), room Lab 2
PROSE = "prose"  # in a sentence: GPU 3 on thalys, GPUs 0-1 on thalys, 2 GPUs on thalys
LISTING = "listing"  # server first, as the booking form lists it: thalys GPUs 0-1, thalys GPU 3
PART = "part"  # other GPUs of the server already named: GPUs 3-4 of thalys
PLACE = "place"  # the server or room as a whole, a rule's or a calendar's scope: server thalys, room Lab 2


def describe_target(
    server: str | None = None,
    devices: Iterable[int] | None = None,
    *,
    room: str | None = None,
    whole: bool = False,
    count: int | None = None,
    shares: str = "",
    style: str = TYPED,
) -> str:
    """Name what a booking holds (or a wait asks for), for people, in one of the styles above.

    server and room are names; devices the GPU indices held, or count a number of any GPUs (prose);
    shares the pooled amounts ('16 CPU cores, 64 GiB'). A whole server or a room reads the same in
    every style but PLACE: 'thalys (whole server)', 'room Lab 2'.
    """
    if room is not None:
        return f"room {room}"
    if style == PLACE:
        return f"server {server}"
    if whole:
        return f"{server} (whole server)"
    indices = sorted(set(devices or ()))
    if not indices and not count:
        return f"{shares} on {server}" if style == PROSE else f"{server}: {shares}"
    plus = f" + {shares}" if shares else ""
    if style == TYPED:
        return f"{server}:{format_device_set(indices)}{plus}"
    number = count or len(indices)
    noun = "GPU" if number == 1 else "GPUs"
    if style == LISTING:
        return f"{server} {noun} {format_device_set(indices)}{plus}"
    gpus = f"{count} {noun}" if count else f"{noun} {format_device_set(indices)}"
    return f"{gpus} {'of' if style == PART else 'on'} {server}{plus}"


def format_shares(cpu_cores: int, memory_gib: int) -> str:
    """'16 CPU cores, 64 GiB': a booking's shares of its server's pooled capacities, or ''."""
    parts: list[str] = []
    if cpu_cores:
        parts.append(f"{cpu_cores} CPU core{'s' if cpu_cores != 1 else ''}")
    if memory_gib:
        parts.append(f"{memory_gib} GiB")
    return ", ".join(parts)


def parse_target(text: str | None) -> tuple[str, list[int] | None]:
    """Split 'thalys:0-1' into ('thalys', [0, 1]); a bare 'thalys' gives ('thalys', None)."""
    text = (text or "").strip()
    if not text:
        raise ParseError("Name a server, optionally with GPUs, e.g. thalys or thalys:0-1.")
    server, sep, devices = text.partition(":")
    server = server.strip()
    if not server:
        raise ParseError(f"'{text}' names no server; write e.g. thalys:0-1.")
    if not sep:
        return server, None
    return server, parse_device_set(devices)


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$", re.ASCII)


def parse_duration(text: str | None) -> timedelta:
    """Read a duration like '30m', '2h', '1h30m' or '1d' into a timedelta."""
    raw = (text or "").strip()
    if len(raw) > MAX_DURATION_LENGTH:
        raise ParseError(f"The duration is {len(raw)} characters long; use e.g. 30m, 2h, 1h30m or 1d.")
    compact = raw.lower().replace(" ", "")
    match = _DURATION.match(compact)
    if not compact or not match or not any(match.groups()):
        raise ParseError(f"'{raw}' is not a duration; use e.g. 30m, 2h, 1h30m or 1d.")
    days, hours, minutes = (int(group or 0) for group in match.groups())
    # Compare before building the timedelta: a huge number would overflow it.
    total_minutes = days * 1440 + hours * 60 + minutes
    if total_minutes == 0:
        raise ParseError(f"'{raw}' is zero; a booking needs a length, e.g. 30m or 2h.")
    if total_minutes > MAX_DURATION.total_seconds() // 60:
        raise ParseError(f"'{raw}' is too long; durations go up to {MAX_DURATION.days}d.")
    return timedelta(minutes=total_minutes)


def _shown(text: str, most: int = 40) -> str:
    """The start of what was typed, to quote in a message."""
    return text if len(text) <= most else text[: most - 1] + "…"


def format_duration(delta: timedelta) -> str:
    """Write a timedelta the way parse_duration reads it: 5400 s -> '1h30m'."""
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    text = (f"{days}d" if days else "") + (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text or "0m"


_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_moment(moment: datetime) -> str:
    """'Mon 23 Nov 14:00' for a datetime already in the zone it is shown in."""
    # By hand rather than strftime: a busy timeline formats thousands of these.
    return f"{_DAY_NAMES[moment.weekday()]} {moment.day:02d} {_MONTH_NAMES[moment.month - 1]} {moment.hour:02d}:{moment.minute:02d}"


def format_span(start: datetime, end: datetime, zone: tzinfo | None = None, joiner: str = "–", *, sentence: bool = False) -> str:
    """'Mon 23 Nov 14:00–16:00 CET' in `zone` (None: Django's active time zone), repeating the date only when it changes.

    sentence=True writes it for the middle of a sentence: 'from Mon 23 Nov 14:00 to 16:00 CET'.
    """
    if zone is None:
        from django.utils import timezone  # here: the CLI reads this module without Django's settings

        zone = timezone.get_current_timezone()
    if sentence:
        return "from " + format_span(start, end, zone, joiner=" to ")
    start, end = start.astimezone(zone), end.astimezone(zone)
    end_text = f"{end.hour:02d}:{end.minute:02d}" if start.date() == end.date() else format_moment(end)
    return f"{format_moment(start)}{joiner}{end_text} {end.tzname()}"


_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$", re.ASCII)
_DAY_WORDS = {"today": 0, "tomorrow": 1}


def parse_moment(text: str | None, *, now: datetime, zone: tzinfo) -> datetime:
    """Read 'now', '14:00', 'today 14:30', 'tomorrow 9:00' or ISO '2026-11-24T14:00' into an aware datetime.

    A bare '14:00' is the next 14:00 from now on (today, else tomorrow); times without a zone are in `zone`.
    """
    raw = (text or "").strip()
    hint = "use e.g. now, 14:00, tomorrow 9:00 or 2026-11-24T14:00"
    if len(raw) > 100:
        raise ParseError(f"'{_shown(raw)}' is too long to be a time; {hint}.")
    words = raw.lower().split()
    if not words:
        raise ParseError(f"The time is empty; {hint}.")
    if words == ["now"]:
        return now
    local_today = now.astimezone(zone).date()
    if len(words) == 1 and _CLOCK.match(words[0]):
        clock = _parse_clock(words[0], hint)
        moment = datetime.combine(local_today, clock, tzinfo=zone)
        if moment < now:
            moment = datetime.combine(local_today + timedelta(days=1), clock, tzinfo=zone)
        return moment
    if len(words) == 2 and words[0] in _DAY_WORDS:
        clock = _parse_clock(words[1], hint)
        return datetime.combine(local_today + timedelta(days=_DAY_WORDS[words[0]]), clock, tzinfo=zone)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ParseError(f"'{raw}' is not a time; {hint}.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return within_reach(moment)


def within_reach(moment: datetime) -> datetime:
    """`moment` (aware) itself if it lies from EARLIEST to before LATEST; else ParseError saying so."""
    try:
        inside = EARLIEST <= moment.astimezone(UTC) < LATEST
    except OverflowError:  # year 1 east of UTC, year 9999 west of it
        inside = False
    if not inside:
        raise ParseError(f"{moment.replace(tzinfo=None).isoformat(' ', 'minutes')} is out of range; write a time from {EARLIEST.year} to {LATEST.year - 1}.")
    return moment


def _parse_clock(word: str, hint: str) -> time:
    match = _CLOCK.match(word)
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ParseError(f"'{word}' is not a time of day; {hint}.")
    return time(int(match.group(1)), int(match.group(2)))


# --- amounts of a server's pooled capacities ----------------------------------------------------

# The API's own bound on an amount; past it a number is a typo, not a machine.
MAX_CPU_CORES = 1_000_000
MAX_MEMORY_GIB = 1_000_000_000
# Memory is booked in whole GiB. A unit without a number of bytes means GiB; M only where it
# makes whole GiB (2048M), so "512M" is refused rather than silently rounded up to a GiB.
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:([kmgtp])(?:i?b)?)?$", re.ASCII | re.IGNORECASE)
_MIB_PER = {"m": 1, "g": 1024, "t": 1024**2, "p": 1024**3}


def parse_memory(text: object) -> int:
    """Read an amount of memory like '64', '64G', '64GiB', '1T' or '1.5TiB' into whole GiB (a bare number is GiB)."""
    raw = str(text if text is not None else "").strip()
    match = _MEMORY.match(raw) if len(raw) <= 40 else None
    if not match:
        raise ParseError(f"'{_shown(raw)}' is not an amount of memory; write GiB like 64, 64G, 64GiB or 1T.")
    number, unit = match.group(1), (match.group(2) or "g").lower()
    if unit == "k":
        raise ParseError(f"'{raw}' is too small to book; memory is booked in whole GiB, e.g. 64G.")
    whole, _, fraction = number.partition(".")
    # Exact arithmetic in MiB: '1.5T' is 1572864 MiB, 1536 GiB; a fraction of a GiB is refused.
    scale: int = 10 ** len(fraction)
    mib_times_scale = (int(whole) * scale + int(fraction or 0)) * _MIB_PER[unit]
    if mib_times_scale % (1024 * scale):
        gib = mib_times_scale / scale / 1024
        raise ParseError(f"'{raw}' is {gib:g} GiB; memory is booked in whole GiB, e.g. {max(1, round(gib))}G.")
    amount = mib_times_scale // (1024 * scale)
    if amount > MAX_MEMORY_GIB:
        raise ParseError(f"'{raw}' is more memory than any server has; write GiB like 64G or 1T.")
    return amount


def format_memory(gib: int) -> str:
    """Write whole GiB the way parse_memory reads it: 64 -> '64G', 2048 -> '2T'."""
    if gib and gib % 1024 == 0:
        return f"{gib // 1024}T"
    return f"{gib}G"


def parse_cpu_cores(text: object) -> int:
    """Read a number of CPU cores ('16'); 0 means none."""
    raw = str(text if text is not None else "").strip()
    if not raw.isascii() or not raw.isdigit():
        raise ParseError(f"'{_shown(raw)}' is not a number of CPU cores; write a whole number like 16.")
    if len(raw) > 20 or int(raw) > MAX_CPU_CORES:  # int() of thousands of digits is slow, then refused
        raise ParseError(f"'{_shown(raw)}' is more CPU cores than any server has; write a whole number like 16.")
    return int(raw)


# --- JSON in a request ------------------------------------------------------------------------


def parse_json(text: str | bytes, *, parse_constant: Callable[[str], Any] | None = None) -> Any:
    """Read JSON that came in a request; refuses JSON that nests deeper than MAX_JSON_DEPTH."""
    too_deep = f"The JSON nests deeper than {MAX_JSON_DEPTH} levels; nothing here takes that."
    try:
        data = json.loads(text, parse_constant=parse_constant)
    except RecursionError:
        raise ParseError(too_deep) from None
    except ValueError as error:
        raise ParseError(str(error)) from None
    level = [data] if isinstance(data, (dict, list)) else []
    for _ in range(MAX_JSON_DEPTH):  # level by level, without recursion
        level = [child for node in level for child in (node.values() if isinstance(node, dict) else node) if isinstance(child, (dict, list))]
        if not level:
            return data
    raise ParseError(too_deep)
