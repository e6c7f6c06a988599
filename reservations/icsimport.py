"""Calendar import: an outside ICS calendar's events become labres bookings of one server or room.

sync() fetches the calendar, expands its events between now and CALENDAR_IMPORT_HORIZON, and
brings the bookings it made in line with them: each occurrence (UID plus, for a recurring event,
its original start) has one ImportedEvent row that remembers its booking and what was applied
last, so an unchanged event costs no write and a second sync of the same source changes nothing.
An event that cannot become a booking (a conflict, no such member, an unreadable title) keeps
its row with the reason, for the admin, and is tried again on the next sync. Bookings are written
only through reservations.services, by their owner; bookings the import did not make are never
touched.
"""
import hashlib
import http.client
import logging
import re
import urllib.error
import urllib.request
import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from notifications.outbox import muted

from . import services
from .errors import BookingError
from .models import Booking, ExternalCalendar, ImportedEvent
from .parsing import ParseError, format_device_set, format_span, parse_device_set, parse_duration
from .recurrence import DAYS, FREQUENCIES, matches_between

logger = logging.getLogger(__name__)

# A sync that died mid-way (a killed worker) frees its calendar after this.
SYNC_LEASE = timedelta(minutes=10)
# Addresses of calendars themselves, never of a member: a shared Google calendar is its events' organizer.
CALENDAR_ADDRESS_SUFFIXES = ("@group.calendar.google.com", "@resource.calendar.google.com", "@import.calendar.google.com")
USER_AGENT = "labres calendar import"


class ImportFailure(Exception):
    """The calendar as a whole could not be fetched or read; str(error) says why, for staff."""


class TitleError(ParseError):
    """An event title that names no booking; str(error) says what would be right."""


# --- titles ---------------------------------------------------------------------------------

TITLE_HINT = "write the member first, then GPUs and purpose, e.g. 'alice 0-1 training' or 'alice - meeting'"
_BRACKETED = re.compile(r"^\[\s*([^\]\s]+)\s*\]\s*:?\s*(.*)$", re.S)
_LEADING_WORD = re.compile(r"^([^\s:\[\]]*\w[^\s:\[\]]*)\s*(:?)\s*(.*)$", re.S)
_DEVICE_TOKEN = re.compile(r"^(?:([A-Za-z0-9_.-]*[A-Za-z_][A-Za-z0-9_.-]*):)?(\d[\d,\-]*)(?=\s|$)\s*(.*)$", re.S | re.A)
_GPU_WORD = re.compile(r"^gpus?\s*:?\s*(?=\d)(.*)$", re.S | re.I)
_SEPARATOR = re.compile(r"^[-–—:]+(?=\s|$)\s*")


@dataclass(frozen=True)
class Title:
    """What an event title says: whose booking (a word to look up), which GPUs (None: all), on which server, why."""

    member: str | None
    devices: list | None
    server: str | None
    purpose: str


def parse_title(summary):
    """Read 'alice 0-1 training', 'alice: thalys:0-1 x', 'alice GPUs 0,1 x', 'alice - meeting', '[alice] 2-3 eval'.

    A title may also start with its devices ('0-1 training'): then it names no member, for events
    whose member is known from their e-mail addresses. Raises TitleError.
    """
    text = " ".join((summary or "").split())
    if not text:
        raise TitleError(f"The event has no title; {TITLE_HINT}.")
    devices_first = _read_devices(text)
    if devices_first is not None:
        server, devices, rest = devices_first
        return Title(member=None, devices=devices, server=server, purpose=_purpose(rest))
    match = _BRACKETED.match(text) or _LEADING_WORD.match(text)
    if match is None:  # no word to read as a member, e.g. '- meeting'; e-mail addresses may still name one
        return Title(member=None, devices=None, server=None, purpose=_purpose(text))
    member, rest = match.group(1), match.groups()[-1]
    found = _read_devices(rest)
    if found is None:
        return Title(member=member, devices=None, server=None, purpose=_purpose(rest))
    server, devices, rest = found
    return Title(member=member, devices=devices, server=server, purpose=_purpose(rest))


def _read_devices(text):
    """(server or None, indices, rest) when text starts with GPUs ('0-1', 'thalys:0-1', 'GPUs 0,1'); else None."""
    gpu_word = _GPU_WORD.match(text)
    if gpu_word:
        text = gpu_word.group(1)
    match = _DEVICE_TOKEN.match(text)
    if not match or (gpu_word and match.group(1)):
        return None
    try:
        devices = parse_device_set(match.group(2).strip(","))
    except ParseError as error:
        raise TitleError(str(error)) from None
    return match.group(1), devices, match.group(3)


def _purpose(rest):
    return _SEPARATOR.sub("", rest.strip(), count=1).strip()


# --- fetching and reading -------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    body: bytes
    etag: str = ""
    last_modified: str = ""


def where(url):
    """The calendar's address as shown to staff: scheme and host only, since the path is often a secret."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}/…"
    return url


def fetch(calendar, *, allow_files=False, conditional=True):
    """The calendar's ICS bytes, or None when the source answered 304 (unchanged). Raises ImportFailure.

    Only http(s) addresses are fetched; a local file only for the one-time command, never for a
    calendar an admin typed in (it would read files of the server).
    """
    url = calendar.url.strip()
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return _fetch_http(url, calendar, conditional)
    if allow_files and (scheme in ("", "file") or len(scheme) == 1):  # len 1: a Windows drive letter
        return Fetched(body=_read_file(url))
    raise ImportFailure(f"'{url}' is not an http or https address; give the calendar's ICS address, e.g. https://calendar.google.com/…/basic.ics.")


def _fetch_http(url, calendar, conditional):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "text/calendar, */*;q=0.5"})
    if conditional and calendar.etag:
        request.add_header("If-None-Match", calendar.etag)
    if conditional and calendar.last_modified:
        request.add_header("If-Modified-Since", calendar.last_modified)
    try:
        with urllib.request.urlopen(request, timeout=settings.CALENDAR_IMPORT_TIMEOUT) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > settings.CALENDAR_IMPORT_MAX_BYTES:
                raise ImportFailure(_too_large(where(url)))
            body = _read_capped(response, where(url))
            return Fetched(body=body, etag=response.headers.get("ETag", ""), last_modified=response.headers.get("Last-Modified", ""))
    except urllib.error.HTTPError as error:
        if error.code == 304:
            return None
        raise ImportFailure(f"The calendar at {where(url)} answered {error.code} {error.reason}; check that the address is still valid.") from None
    except urllib.error.URLError as error:
        raise ImportFailure(f"The calendar at {where(url)} could not be reached: {error.reason}.") from None
    except TimeoutError:
        raise ImportFailure(f"The calendar at {where(url)} did not answer within {settings.CALENDAR_IMPORT_TIMEOUT} s.") from None
    except (OSError, http.client.HTTPException) as error:  # a connection reset or cut short while reading
        raise ImportFailure(f"The calendar at {where(url)} broke off the answer ({error.__class__.__name__}); it is tried again at the next sync.") from None


def _read_capped(stream, place):
    body = stream.read(settings.CALENDAR_IMPORT_MAX_BYTES + 1)
    if len(body) > settings.CALENDAR_IMPORT_MAX_BYTES:
        raise ImportFailure(_too_large(place))
    return body


def _too_large(place):
    mib = settings.CALENDAR_IMPORT_MAX_BYTES / 1024 / 1024
    return f"The calendar at {place} is larger than {mib:g} MiB (CALENDAR_IMPORT_MAX_BYTES); is it the right address?"


def _read_file(path):
    path = Path(path.removeprefix("file://"))
    try:
        with path.open("rb") as stream:
            return _read_capped(stream, str(path))
    except FileNotFoundError:
        raise ImportFailure(f"There is no file {path}.") from None
    except OSError as error:
        raise ImportFailure(f"The file {path} cannot be read: {error.strerror}.") from None


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of an event, in UTC, as the import sees it."""

    uid: str
    recurrence: str
    summary: str
    start: datetime
    end: datetime
    cancelled: bool
    emails: tuple  # organizer first, then attendees; lower case
    sequence: int = 0


@dataclass(frozen=True)
class Skipped:
    """An event left out before expansion, and why (for the command's report and the sync's status)."""

    uid: str
    summary: str
    when: str
    reason: str


def read_calendar(body, *, start, end):
    """(occurrences of the events in an ICS document that overlap [start, end), Skipped events). Raises ImportFailure."""
    import icalendar
    import recurring_ical_events

    text = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text[:15].upper().startswith(b"BEGIN:VCALENDAR"):
        raise ImportFailure("The address does not serve an iCalendar file (it should start with BEGIN:VCALENDAR); use the calendar's ICS address.")
    try:
        calendar = icalendar.Calendar.from_ical(text)
        skipped = _screen(calendar, start, end)
        recurring = _recurring_uids(calendar)
        components = recurring_ical_events.of(calendar).between(start, end)
        return [occurrence for component in components if (occurrence := _occurrence(component, recurring)) is not None], skipped
    except ImportFailure:
        raise
    except Exception as error:  # icalendar and its expansion raise many kinds on a broken file
        raise ImportFailure(f"The iCalendar file cannot be read: {error}.") from None


# --- screening: what python-dateutil must never be asked to expand ---------------------------------

YEARS = (1970, 2999)  # the years a booking may fall in (reservations.services refuses others)
SUB_DAILY = {"SECONDLY": "second", "MINUTELY": "minute", "HOURLY": "hour"}
# RRULE parts reservations.recurrence reads; with others (BYSETPOS, BYWEEKNO, BYYEARDAY, BYHOUR, ...) the
# import cannot tell cheaply whether a rule ever matches, and python-dateutil may look until the year 9999.
READ_PARTS = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "COUNT", "UNTIL", "WKST"}
_NTH_DAY = re.compile(r"^([+-]?)(\d{1,2})(MO|TU|WE|TH|FR|SA|SU)$")


def _screen(calendar, start, end):
    """Take out of `calendar` the events whose expansion could run away or fail, and say why.

    python-dateutil checks a rule's UNTIL only against dates that match, so a rule that never matches
    (a 30 February) makes it walk every day, month or year to 9999: seconds of CPU per event, on every
    sync. Each rule is asked first, day by day over the import's window only, whether it has a date
    there (reservations.recurrence); one that has none is dropped, the event's own start stays.
    """
    events = calendar.walk("VEVENT")
    skipped, bad = [], {}
    for event in events:
        uid = str(event.get("UID", "")).strip()
        if uid in bad:
            continue
        reason = _runaway(event, start, end)
        if reason:
            bad[uid] = reason
            skipped.append(Skipped(uid=uid, summary=str(event.get("SUMMARY", "")).strip(), when=_when(event), reason=reason))
    if bad:
        calendar.subcomponents[:] = [c for c in calendar.subcomponents if c.name != "VEVENT" or str(c.get("UID", "")).strip() not in bad]
    return skipped


def _runaway(event, start, end):
    """Why the event is left out, or None; a rule with no date in [start, end) is removed from it (not a reason)."""
    for name in ("DTSTART", "DTEND", "RECURRENCE-ID", "RDATE", "EXDATE"):
        for value in _dates(event.get(name)):
            if not YEARS[0] <= value.year <= YEARS[1]:
                return f"Its {name} is in the year {value.year}; bookings fall between {YEARS[0]} and {YEARS[1]}."
    if event.get("EXRULE") is not None:
        return "It excludes dates by an EXRULE, which RFC 5545 no longer has; exclude them with EXDATE."
    rules = event.get("RRULE")
    rules = rules if isinstance(rules, list) else [rules] if rules is not None else []
    if not rules:
        return None
    first = event.get("DTSTART")
    if first is None:
        return "It repeats but has no DTSTART."
    first = first.dt.date() if isinstance(first.dt, datetime) else first.dt
    kept = []
    for rule in rules:
        parts, problem = _rule_parts(rule)
        if problem:
            return problem
        # A day's slack at each end: the window is in UTC, the rule's days in the event's zone.
        if matches_between(parts, first=first, start=start.date() - timedelta(days=1), end=end.date() + timedelta(days=1)):
            kept.append(rule)
    if len(kept) != len(rules):
        if kept:
            event["RRULE"] = kept if len(kept) > 1 else kept[0]
        else:
            del event["RRULE"]  # its own start (and RDATEs) stay; the rule would add nothing here
    return None


def _rule_parts(rule):
    """({part: text}, None) for a rule reservations.recurrence can walk, else (None, why not)."""
    text = rule.to_ical().decode()
    parts = dict(piece.split("=", 1) for piece in text.split(";") if "=" in piece)
    freq = parts.get("FREQ", "")
    if freq in SUB_DAILY:
        return None, f"It repeats every {SUB_DAILY[freq]} (FREQ={freq}); bookings repeat daily at most."
    unread = sorted(set(parts) - READ_PARTS)
    if freq not in FREQUENCIES or unread:
        what = ", ".join(unread) if unread else f"FREQ={freq or 'none'}"
        return None, f"Its repeat rule uses {what}, which the import does not read; put these dates in labres, or in separate events."
    codes = parts.get("BYDAY", "").split(",") if parts.get("BYDAY") else []
    numbered = [code for code in codes if code not in DAYS]
    if numbered:
        in_month = freq == "MONTHLY" or (freq == "YEARLY" and "BYMONTH" in parts)
        limit = 5 if in_month else 53
        for code in numbered:
            match = _NTH_DAY.match(code)
            if not match or freq not in ("MONTHLY", "YEARLY") or not 1 <= int(match.group(2)) <= limit:
                return None, f"Its repeat rule's BYDAY={code} is not a day this rule can have; write e.g. BYDAY=2MO in a monthly rule."
        if len(numbered) != len(codes):
            return None, "Its repeat rule mixes plain and numbered days in BYDAY (e.g. MO,-1FR); split it into two events."
        parts["BYDAY"] = ",".join(f"{'-' if m.group(1) == '-' else ''}{int(m.group(2))}{m.group(3)}" for m in map(_NTH_DAY.match, numbered))
    try:
        for name in ("INTERVAL", "COUNT"):
            if name in parts and int(parts[name]) < 1:
                raise ValueError
        for value in parts.get("BYMONTHDAY", "").split(",") if parts.get("BYMONTHDAY") else []:
            if not 1 <= abs(int(value)) <= 31:
                raise ValueError
        for value in parts.get("BYMONTH", "").split(",") if parts.get("BYMONTH") else []:
            if not 1 <= int(value) <= 12:
                raise ValueError
        if "UNTIL" in parts:
            until = date(int(parts["UNTIL"][:4]), int(parts["UNTIL"][4:6]), int(parts["UNTIL"][6:8]))
            if until.year > YEARS[1]:
                del parts["UNTIL"]  # as good as none: the window ends long before
    except (ValueError, ParseError):
        return None, f"Its repeat rule {text} has a value out of range."
    return parts, None


def _dates(prop):
    """The dates and times a property holds (DTSTART: one; RDATE, EXDATE: lists; periods: their starts)."""
    if prop is None:
        return
    for item in prop if isinstance(prop, list) else [prop]:
        values = [entry.dt for entry in item.dts] if hasattr(item, "dts") else [item.dt]
        for value in values:
            value = value[0] if isinstance(value, tuple) else value
            if isinstance(value, (date, datetime)):
                yield value


def _when(event):
    start = event.get("DTSTART")
    try:
        return start.dt.isoformat() if start is not None else ""
    except (AttributeError, ValueError):
        return ""


def _recurring_uids(calendar):
    """UIDs of events that recur: recurring_ical_events gives every occurrence a RECURRENCE-ID, so ask the source."""
    return {
        str(event.get("UID", ""))
        for event in calendar.walk("VEVENT")
        if event.get("RRULE") is not None or event.get("RDATE") is not None or event.get("RECURRENCE-ID") is not None
    }


def _occurrence(component, recurring):
    uid = str(component.get("UID", "")).strip()
    if not uid or component.get("DTSTART") is None:
        return None
    start = _as_utc(component["DTSTART"].dt)
    end = _as_utc(component["DTEND"].dt) if component.get("DTEND") is not None else start
    recurrence = ""
    if uid in recurring:
        original = component.get("RECURRENCE-ID")
        recurrence = (_as_utc(original.dt) if original is not None else start).isoformat()
    return Occurrence(
        uid=uid[:500],
        recurrence=recurrence,
        summary=str(component.get("SUMMARY", "")).strip(),
        start=start,
        end=end,
        cancelled=str(component.get("STATUS", "")).upper() == "CANCELLED",
        emails=_emails(component),
        sequence=int(component.get("SEQUENCE", 0) or 0),
    )


def _as_utc(value):
    """A DATE is the day from midnight in the lab's time zone; a floating time is the lab's local time."""
    lab = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    if not isinstance(value, datetime) and isinstance(value, date):
        value = datetime.combine(value, time(0), tzinfo=lab)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=lab)
    return value.astimezone(zoneinfo.ZoneInfo("UTC"))


def _emails(component):
    found = []
    attendees = component.get("ATTENDEE") or []
    if not isinstance(attendees, list):
        attendees = [attendees]
    for address in [component.get("ORGANIZER"), *attendees]:
        if address is None:
            continue
        email = str(address).strip()
        if email.lower().startswith("mailto:"):
            email = email[7:]
        email = email.strip().lower()
        if "@" in email and not email.endswith(CALENDAR_ADDRESS_SUFFIXES) and email not in found:
            found.append(email)
    return tuple(found)


# --- members --------------------------------------------------------------------------------


def find_member(emails, word):
    """(user, None) for the member an event belongs to, or (None, why not). E-mail addresses first, then the title's word."""
    User = get_user_model()
    active = User.objects.filter(is_active=True).select_related("profile")
    if emails:
        by_email = {user.email.lower(): user for user in active.filter(_any_email(emails))}
        matched = [by_email[email] for email in emails if email in by_email]
        if matched:
            named = [user for user in matched if word and _is_called(user, word)]
            return (named or matched)[0], None
    if word:
        user = _member_by_word(active, word)
        if user is not None:
            return user, None
    tried = []
    if emails:
        tried.append("the e-mail addresses " + ", ".join(emails))
    if word:
        tried.append(f"'{word}' as user name, unix user name, e-mail name and first name")
    if not tried:
        return None, "The event names no member; write their user name first in the title, e.g. 'alice 0-1 training'."
    return None, f"No active member matches {' or '.join(tried)}; write a member's user name first in the title, or add the address to their account."


def _any_email(emails):
    condition = Q()
    for email in emails:
        condition |= Q(email__iexact=email)
    return condition


def _member_by_word(active, word):
    """The one active member the word names; first name counts only when no one else has it."""
    word = word.strip().lower()
    for condition in (Q(username__iexact=word), Q(profile__unix_username__iexact=word), Q(email__istartswith=f"{word}@")):
        found = list(active.filter(condition)[:2])
        if len(found) == 1:
            return found[0]
    found = list(active.filter(first_name__iexact=word)[:2])
    return found[0] if len(found) == 1 else None


def _is_called(user, word):
    word = word.lower()
    profile = getattr(user, "profile", None)
    names = {user.get_username().lower(), user.email.lower().partition("@")[0], (user.first_name or "").lower()}
    if profile is not None and profile.unix_username:
        names.add(profile.unix_username.lower())
    return word in names


# --- syncing --------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one occurrence became, for the summary and the command's table."""

    occurrence: Occurrence
    state: str
    change: str  # new, updated, unchanged, cancelled, withdrawn, problem
    problem: str = ""
    booking: Booking | None = None
    applied_hash: str = ""  # empty: not settled, tried again on the next sync


@dataclass
class Summary:
    """What a sync did; `status` is the line shown in the admin."""

    skipped: bool = False
    not_modified: bool = False
    error: str = ""
    outcomes: list = field(default_factory=list)
    removed: int = 0
    skipped_events: list = field(default_factory=list)  # Skipped: left out before expansion, with the reason

    def count(self, **match):
        return sum(all(getattr(o, key) == value for key, value in match.items()) for o in self.outcomes)

    @property
    def status(self):
        if self.not_modified:
            return "unchanged since the last fetch"
        booked = self.count(state=ImportedEvent.State.BOOKED)
        updated = self.count(state=ImportedEvent.State.BOOKED, change="updated")
        parts = [
            (booked - updated, "booked", "booked"),
            (updated, "updated", "updated"),
            (self.count(state=ImportedEvent.State.CANCELLED) + self.removed, "cancelled", "cancelled"),
            (self.count(state=ImportedEvent.State.CONFLICT), "conflict", "conflicts"),
            (self.count(state=ImportedEvent.State.UNMATCHED), "unmatched", "unmatched"),
            (self.count(state=ImportedEvent.State.INVALID), "unreadable", "unreadable"),
        ]
        parts.append((len(self.skipped_events), "skipped", "skipped"))
        said = ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in parts if n)
        events = len(self.outcomes) + len(self.skipped_events)
        return f"{events} event{'' if events == 1 else 's'}" + (f": {said}" if said else "")


def claim(calendar, now):
    """Take the calendar's sync lease with one conditional UPDATE; False if another sync holds it."""
    free = Q(syncing_until__isnull=True) | Q(syncing_until__lt=now)
    return ExternalCalendar.objects.filter(free, pk=calendar.pk).update(syncing_until=now + SYNC_LEASE) == 1


def release(calendar):
    ExternalCalendar.objects.filter(pk=calendar.pk).update(syncing_until=None)


def sync(calendar, *, now=None, allow_files=False):
    """Fetch the calendar and bring its bookings in line with its events; returns a Summary (never raises ImportFailure)."""
    now = now or timezone.now()
    if not claim(calendar, now):
        return Summary(skipped=True)
    try:
        if calendar.notify_members:
            return _sync(calendar, now, allow_files)
        with muted():
            return _sync(calendar, now, allow_files)
    finally:
        release(calendar)


def _sync(calendar, now, allow_files):
    calendar = ExternalCalendar.objects.select_related("server", "room").get(pk=calendar.pk)
    # An event is known by its UID (and RECURRENCE-ID) on the calendar's server or room, whichever
    # calendar brought it: an edited export imported under a new name finds the same rows and bookings.
    rows = {
        (row.uid, row.recurrence): row
        for row in ImportedEvent.objects.filter(server=calendar.server_id, room=calendar.room_id).select_related("booking__user")
    }
    own = list(calendar.events.all())
    # Events waiting for a free slot or a member must be looked at again even if the source is unchanged.
    pending = any(row.state in ImportedEvent.PROBLEMS for row in own)
    horizon = now + parse_duration(settings.CALENDAR_IMPORT_HORIZON)
    try:
        fetched = fetch(calendar, allow_files=allow_files, conditional=not pending)
        if fetched is None:
            _record(calendar, now, error="")
            return Summary(not_modified=True)
        occurrences, skipped = read_calendar(fetched.body, start=now, end=horizon)
    except ImportFailure as error:
        _record(calendar, now, error=str(error))
        return Summary(error=str(error))
    summary = Summary(skipped_events=skipped)
    seen = set()
    for occurrence in occurrences:
        key = (occurrence.uid, occurrence.recurrence)
        if key in seen:
            continue  # a broken source repeating one occurrence; the first one counts
        seen.add(key)
        summary.outcomes.append(_apply_safely(calendar, occurrence, rows.get(key), now))
    for row in own:  # what this calendar showed before and shows no more (another calendar's events are its own)
        moved_away = (row.server_id, row.room_id) != (calendar.server_id, calendar.room_id)  # the calendar was pointed elsewhere
        if (moved_away or (row.uid, row.recurrence) not in seen) and row.start is not None and row.start < horizon:
            summary.removed += _forget(row, now)
    _record(calendar, now, error="", status=summary.status, etag=fetched.etag, last_modified=fetched.last_modified)
    return summary


def _record(calendar, now, *, error, status=None, etag=None, last_modified=None):
    values = {"last_fetched_at": now, "last_error": error}
    if status is not None:
        values.update(last_status=status[:200], etag=(etag or "")[:500], last_modified=(last_modified or "")[:100])
    ExternalCalendar.objects.filter(pk=calendar.pk).update(**values)


def _apply_safely(calendar, occurrence, row, now):
    """Apply one occurrence in its own savepoint, so that one failing event never stops the others."""
    try:
        with transaction.atomic():
            outcome = _apply(calendar, occurrence, row, now)
    except BookingError as error:
        kept = row.booking if row is not None else None
        outcome = Outcome(occurrence, ImportedEvent.State.CONFLICT, "problem", problem=_conflict_text(error, row, now), booking=kept)
    except Exception as error:  # a bug or a database hiccup in one event must not stop the calendar
        logger.exception("Importing event %s of calendar %s failed", occurrence.uid, calendar.pk)
        kept = row.booking if row is not None else None
        outcome = Outcome(occurrence, ImportedEvent.State.INVALID, "problem", problem=f"Importing this event failed: {error}.", booking=kept)
    _save_row(calendar, occurrence, row, outcome)
    return outcome


def _conflict_text(error, row, now):
    kept = row is not None and row.booking is not None and _holds(row.booking, now)
    return str(error) + (" The booking keeps its earlier time." if kept else "")


def _apply(calendar, occurrence, row, now):
    """Create, change or cancel the occurrence's booking; returns an Outcome. BookingError means a conflict."""
    booking = row.booking if row is not None else None
    if occurrence.cancelled:
        return _withdraw_outcome(occurrence, booking, now, "The event is cancelled in the calendar.")
    if occurrence.end <= occurrence.start:
        return _problem(occurrence, booking, now, ImportedEvent.State.INVALID, "The event has no length (it ends when it starts).")
    try:
        title = parse_title(occurrence.summary)
        user, why_not = find_member(occurrence.emails, title.member)
        target = _target(calendar, title)
    except TitleError as error:
        return _problem(occurrence, booking, now, ImportedEvent.State.INVALID, f"{error}")
    if user is None:
        return _problem(occurrence, booking, now, ImportedEvent.State.UNMATCHED, why_not)
    purpose = _purpose_for(title, user)[:200]
    wanted = _hash(user.pk, target, occurrence.start, occurrence.end, purpose)
    if row is not None and row.applied_hash == wanted and booking is not None:
        return _unchanged(occurrence, row, booking, now)
    if booking is not None and _holds(booking, now):
        if booking.user_id == user.pk and _target_of(booking) == target:
            return _change(occurrence, booking, purpose, now, wanted)
        _withdraw(booking, now)
    created = services.create_booking(
        user, start=occurrence.start, end=occurrence.end, purpose=purpose, source=Booking.Source.CALENDAR,
        now=now, allow_past_start=True, **_target_kwargs(calendar, target),
    )
    change = "new" if booking is None else "updated"
    return Outcome(occurrence, ImportedEvent.State.BOOKED, change, booking=created, applied_hash=wanted)


def _target(calendar, title):
    """The units a title asks for on this calendar's resource: ('room',), ('server',) or ('gpus', '0-1')."""
    if calendar.room_id:
        if title.devices is not None:
            raise TitleError(f"The title names GPUs {format_device_set(title.devices)}, but this calendar follows room {calendar.room.name}, which has none.")
        return ("room",)
    if title.server and title.server.lower() != calendar.server.name.lower():
        raise TitleError(f"The title names server {title.server}, but this calendar follows {calendar.server.name}.")
    if title.devices is None:
        return ("server",)
    return ("gpus", format_device_set(title.devices))


def _target_kwargs(calendar, target):
    if target[0] == "room":
        return {"room": calendar.room}
    return {"server": calendar.server, "devices": target[1] if target[0] == "gpus" else None}


def _target_of(booking):
    if booking.room_id:
        return ("room",)
    if booking.whole_server:
        return ("server",)
    indices = booking.allocations.filter(unit__device__isnull=False).values_list("unit__device__index", flat=True)
    return ("gpus", format_device_set(indices))


def _purpose_for(title, user):
    """The title's purpose; a leading word that did not name the member (matched by e-mail) belongs to the purpose."""
    if title.member and not _is_called(user, title.member):
        return f"{title.member} {title.purpose}".strip()
    return title.purpose


def _hash(*parts):
    return hashlib.sha256(repr([p.isoformat() if isinstance(p, datetime) else p for p in parts]).encode()).hexdigest()


def _holds(booking, now):
    return booking.status == Booking.Status.CONFIRMED and booking.end > now


def _unchanged(occurrence, row, booking, now):
    """The event is as it was applied; the booking is left alone even if its owner cancelled it in labres."""
    if booking.status == Booking.Status.CONFIRMED or row.state != ImportedEvent.State.BOOKED:
        return Outcome(occurrence, row.state, "unchanged", problem=row.problem, booking=booking, applied_hash=row.applied_hash)
    return Outcome(
        occurrence, ImportedEvent.State.CANCELLED, "unchanged", booking=booking, applied_hash=row.applied_hash,
        problem=f"Booking #{booking.pk} was {booking.get_status_display()} in labres; it is booked again only if the event changes.",
    )


def _change(occurrence, booking, purpose, now, wanted):
    """Move the booking to the event's times and purpose; a running booking's start stays (the service refuses to move it)."""
    start, note = occurrence.start, ""
    if booking.start <= now and start != booking.start:
        start = booking.start
        note = f"The event now starts {format_span(occurrence.start, occurrence.end)}; the booking was already running, so only its end moved."
    if booking.start <= now and occurrence.end <= now:
        services.release_booking(booking, by=booking.user, now=now)
        why = "The event now ends in the past; the running booking was released."
        return Outcome(occurrence, ImportedEvent.State.CANCELLED, "cancelled", booking=booking, problem=why, applied_hash=wanted)
    changed = services.change_booking(booking, by=booking.user, start=start, end=occurrence.end, purpose=purpose, now=now)
    return Outcome(occurrence, ImportedEvent.State.BOOKED, "updated", booking=changed, problem=note, applied_hash=wanted)


def _withdraw(booking, now):
    """End a booking the import made: cancel it if it is upcoming, release it if it is running."""
    if not _holds(booking, now) or booking.source != Booking.Source.CALENDAR:
        return False
    if booking.start > now:
        services.cancel_booking(booking, by=booking.user, now=now)
    else:
        services.release_booking(booking, by=booking.user, now=now)
    return True


def _withdraw_outcome(occurrence, booking, now, why):
    if booking is not None:
        _withdraw(booking, now)
    return Outcome(occurrence, ImportedEvent.State.CANCELLED, "cancelled", booking=booking, problem=why, applied_hash="cancelled")


def _problem(occurrence, booking, now, state, why):
    """The event cannot be a booking (any more); a booking made from it earlier no longer stands for it."""
    if booking is not None and _withdraw(booking, now):
        why += f" Booking #{booking.pk}, made from it earlier, was cancelled."
    return Outcome(occurrence, state, "problem", booking=booking, problem=why)


def _save_row(calendar, occurrence, row, outcome):
    """Write the occurrence's row only if something in it changed: an unchanged event costs no write."""
    values = {
        "booking": outcome.booking,
        "state": outcome.state,
        "problem": outcome.problem,
        "summary": occurrence.summary[:500],
        "start": occurrence.start,
        "end": occurrence.end,
        "source_sequence": occurrence.sequence,
        "applied_hash": outcome.applied_hash,
    }
    if row is None:
        ImportedEvent.objects.create(
            calendar=calendar, server=calendar.server, room=calendar.room, uid=occurrence.uid, recurrence=occurrence.recurrence, **values,
        )
        return
    values["calendar"] = calendar  # the calendar that showed it last owns it now
    current = {name: getattr(row, name) for name in values if name not in ("booking", "calendar")}
    values_without_links = {name: value for name, value in values.items() if name not in ("booking", "calendar")}
    if (
        current != values_without_links
        or row.booking_id != (outcome.booking.pk if outcome.booking else None)
        or row.calendar_id != calendar.pk
    ):
        for name, value in values.items():
            setattr(row, name, value)
        row.save()


def _forget(row, now):
    """The occurrence disappeared from the source: cancel its booking if still upcoming or running. Returns 1 if one was."""
    if row.end is not None and row.end <= now:
        if row.state != ImportedEvent.State.PAST:  # it ended: nothing to cancel, only to note
            row.state, row.problem = ImportedEvent.State.PAST, ""
            row.save(update_fields=["state", "problem", "updated_at"])
        return 0
    if row.state == ImportedEvent.State.CANCELLED and row.problem == REMOVED:
        return 0
    withdrawn = 0
    try:
        with transaction.atomic():
            if row.booking is not None and _withdraw(row.booking, now):
                withdrawn = 1
    except BookingError as error:
        logger.warning("Could not cancel booking #%s of a removed event: %s", row.booking_id, error)
        return 0
    row.state = ImportedEvent.State.CANCELLED
    row.problem = REMOVED
    row.save(update_fields=["state", "problem", "updated_at"])
    return withdrawn


REMOVED = "The event is no longer in the calendar."
