"""Calendar subscription feeds: which bookings a feed holds, its version (for ETag/304), its body.

A calendar app polls a feed every few minutes for as long as the member keeps it, so the
answer "nothing changed" is one indexed aggregate query: how many bookings the feed holds and
when the latest of them changed. Only a change pays for loading and writing the bookings.
"""
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Aggregate, CharField, F, Func, OuterRef, Q, Subquery, Value
from django.utils import timezone

from . import queries
from .calendar import Audience, Entry, render_calendar, series_text
from .models import Allocation, Booking, BookingSeries, CalendarFeed, FeedStamp, Room, Server, Unit, display_name_of
from .parsing import format_device_set, parse_duration

FORMAT_VERSION = 1  # bump when the feed's text changes shape, so clients fetch it again
TOUCH_EVERY = timedelta(hours=1)  # last_used_at is kept to the hour: no write per poll


@dataclass(frozen=True)
class Version:
    etag: str  # quoted, as in the header
    last_modified: datetime


def find(token):
    """The active member's feed whose address holds `token`, or None; the secret part is compared in constant time."""
    size = CalendarFeed.SELECTOR_LENGTH
    if not isinstance(token, str) or len(token) <= size or len(token) > 128:
        return None
    # Polled by calendar apps all day: one small join (a retired member's feeds stop); server,
    # room and names load only for a full answer.
    feed = queries.active_feed(token[:size])
    if feed is None or not hmac.compare_digest(feed.secret.encode(), token[size:].encode()):
        return None
    return feed


def bookings_of(feed, now):
    """The bookings a feed holds: ended at most CALENDAR_HISTORY ago, cancelled ones only for a while."""
    history = now - parse_duration(settings.CALENDAR_HISTORY)
    keep_cancelled = now - parse_duration(settings.CALENDAR_KEEP_CANCELLED)
    bookings = Booking.objects.filter(end__gte=history).exclude(Q(status=Booking.Status.CANCELLED) & Q(updated_at__lt=keep_cancelled))
    if feed.scope == CalendarFeed.Scope.MINE:
        return bookings.filter(user_id=feed.user_id)
    if feed.scope == CalendarFeed.Scope.SERVER:
        return bookings.filter(server_id=feed.server_id)
    if feed.scope == CalendarFeed.Scope.ROOM:
        return bookings.filter(room_id=feed.room_id)
    return bookings


def version(feed, now, base_url):
    """What the feed's body depends on, hashed: its bookings' count and latest change, and its own settings.

    Every poll of every calendar app asks this: one query (queries.feed_counts), counting what
    bookings_of gives.
    """
    history = now - parse_duration(settings.CALENDAR_HISTORY)
    keep_cancelled = now - parse_duration(settings.CALENDAR_KEEP_CANCELLED)
    count, latest, stamp_number, stamp_changed = queries.feed_counts(feed, history, keep_cancelled)
    # Last-Modified has whole seconds only (HTTP dates); the ETag, which If-None-Match compares first,
    # changes with any change: microsecond stamps of the bookings, and the stamp's counter for the rest.
    last_modified = max(filter(None, [latest, feed.created_at, stamp_changed]))
    parts = [
        FORMAT_VERSION, feed.pk, feed.scope, feed.server_id, feed.room_id, count, latest and latest.isoformat(), stamp_number,
        base_url, settings.SITE_URL, settings.CALENDAR_SHOW_OTHERS_PURPOSES, settings.CALENDAR_REFRESH,
        settings.CALENDAR_HISTORY, settings.CALENDAR_KEEP_CANCELLED,
    ]
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()
    return Version(etag=f'"{digest}"', last_modified=last_modified)


# What a feed shows of each model besides bookings; a save that names only other fields changes no feed.
SHOWN_FIELDS = {
    "Server": {"name", "location"},
    "Room": {"name", "location"},
    "Device": {"index", "server", "server_id"},
    "Profile": {"display_name"},
    "User": {"username", "first_name", "last_name"},
    "BookingSeries": {"rule", "first_date", "start_time", "time_zone", "until"},
}


def on_shown_change(sender, instance, created=False, update_fields=None, raw=False, **kwargs):
    """post_save / post_delete of a model whose fields feeds show: count a change (in the same transaction)."""
    if raw or created:
        return  # a fixture load; something new is in no feed before a booking of it is
    if update_fields is not None and not set(update_fields) & SHOWN_FIELDS.get(sender.__name__, set()):
        return  # e.g. a sign-in saving last_login
    bump()


def bump(now=None):
    """Count a change to what feeds show besides bookings: every feed's ETag changes."""
    now = now or timezone.now()
    if not FeedStamp.objects.filter(pk=1).update(number=F("number") + 1, changed_at=now):
        FeedStamp.objects.get_or_create(pk=1, defaults={"number": 1, "changed_at": now})


class ICalUTC(Func):
    """A timestamp written by the database as iCalendar UTC (20261123T163000Z).

    A thousand rows hold four thousand timestamps; turned into Python datetimes one by one
    (Django's time zone loader on PostgreSQL) they cost more than the rest of the feed together.
    """

    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="""to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS"Z"')""", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        # The format travels as a parameter: '%' in the SQL text would trip Django's query logging.
        strftime = Func(Value("%Y%m%dT%H%M%SZ"), *self.get_source_expressions(), function="strftime", output_field=CharField())
        return strftime.as_sql(compiler, connection)


class UnitIds(Aggregate):
    """A group's unit ids as one text, '12,13,14': a booking's units in its own row, no second query."""

    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="string_agg((%(expressions)s)::text, ',')", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="group_concat(%(expressions)s, ',')", **extra)


ENTRY_COLUMNS = (
    "pk", "user_id", "purpose", "status", "server_id", "whole_server", "room_id", "sequence",
    "ical_start", "ical_end", "ical_created", "ical_modified", "unit_ids", "series_id",
)


def entries_of(bookings, *, names=True):
    """Calendar entries for a queryset of bookings, without model instances and without a join per booking.

    The bookings come in one query (each with its unit ids); servers, rooms, GPUs and members'
    names (only with `names`) in one small query each, whatever the number of bookings.
    """
    units = Allocation.objects.filter(booking=OuterRef("pk")).order_by().values("booking").annotate(ids=UnitIds("unit_id")).values("ids")
    rows = list(
        bookings.annotate(
            ical_start=ICalUTC("start"), ical_end=ICalUTC("end"), ical_created=ICalUTC("created_at"), ical_modified=ICalUTC("updated_at"),
            unit_ids=Subquery(units),
        ).values_list(*ENTRY_COLUMNS)
    )
    server_ids = {row[4] for row in rows if row[4]}
    room_ids = {row[6] for row in rows if row[6]}
    servers = {pk: (name, location) for pk, name, location in Server.objects.filter(pk__in=server_ids).values_list("pk", "name", "location")}
    rooms = {pk: (name, location) for pk, name, location in Room.objects.filter(pk__in=room_ids).values_list("pk", "name", "location")}
    gpu_of = dict(Unit.objects.filter(kind=Unit.Kind.GPU, server_id__in=server_ids).values_list("pk", "device__index"))
    who = _names({row[1] for row in rows}) if names else {}
    series_ids = {row[13] for row in rows if row[13]}
    series = {item.pk: series_text(item) for item in BookingSeries.objects.filter(pk__in=series_ids)} if series_ids else {}
    device_sets = {}  # a lab's bookings repeat a few GPU sets: write each once
    entries = []
    for pk, user_id, purpose, status, server_id, whole, room_id, sequence, start, end, created, modified, unit_ids, series_id in rows:
        if room_id:
            kind, (what, location) = "room", rooms[room_id]
        elif whole:
            kind, (what, location) = "server", servers[server_id]
        else:
            name, location = servers[server_id]
            gpus = tuple(sorted(gpu_of[u] for u in map(int, unit_ids.split(",") if unit_ids else ()) if u in gpu_of))
            written = device_sets.get(gpus)
            if written is None:
                written = device_sets[gpus] = format_device_set(gpus)
            kind, what = "gpu", f"{name}:{written}"
        entries.append(
            Entry(
                pk=pk, user_id=user_id, who=who.get(user_id, ""), purpose=purpose, status=status, kind=kind, what=what,
                location=location, start=start, end=end, created=created, modified=modified, sequence=sequence,
                series=series.get(series_id, ""),
            )
        )
    return entries


def _names(user_ids):
    users = get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "profile__display_name", "first_name", "last_name", "username")
    return {pk: display_name_of(display, first, last, username) for pk, display, first, last, username in users}


def render(feed, now, base_url):
    """The feed's body (bytes)."""
    audience = Audience(
        viewer_id=feed.user_id,
        shared=feed.scope != CalendarFeed.Scope.MINE,
        others_purposes=settings.CALENDAR_SHOW_OTHERS_PURPOSES,
    )
    title, description = _title(feed)
    return render_calendar(
        entries_of(bookings_of(feed, now).order_by("start", "pk"), names=feed.scope != CalendarFeed.Scope.MINE),
        base_url=base_url,
        audience=audience,
        name=title,
        description=description,
        refresh=parse_duration(settings.CALENDAR_REFRESH),
    )


def _title(feed):
    """(name, description) of the calendar, from one single-table query at most."""
    scope = feed.scope
    if scope == CalendarFeed.Scope.MINE:
        owner = _names({feed.user_id}).get(feed.user_id, "")
        return CalendarFeed.title_of(scope, owner=owner), "Your labres bookings."
    if scope == CalendarFeed.Scope.SERVER:
        server = Server.objects.values_list("name", flat=True).get(pk=feed.server_id)
        return CalendarFeed.title_of(scope, server=server), f"Bookings of server {server} and its GPUs."
    if scope == CalendarFeed.Scope.ROOM:
        room = Room.objects.values_list("name", flat=True).get(pk=feed.room_id)
        return CalendarFeed.title_of(scope, room=room), f"Bookings of room {room}."
    return CalendarFeed.title_of(scope), "Every booking in the lab."


def touch(feed, now):
    """Note that a calendar app fetched the feed, at most once an hour."""
    if feed.last_used_at is None or now - feed.last_used_at >= TOUCH_EVERY:
        CalendarFeed.objects.filter(pk=feed.pk).update(last_used_at=now)


def own_feed(user):
    """The member's personal feed, made on first use."""
    feed, _ = CalendarFeed.objects.get_or_create(user=user, scope=CalendarFeed.Scope.MINE)
    feed.user = user  # its title reads the member's name: no second load of the signed-in user
    return feed


def reset(feed):
    """A new secret address for the feed; the old one answers 404 from now on."""
    feed.new_secret()
    feed.save(update_fields=["selector", "secret"])
    return feed

