"""Calendar subscription feeds: which bookings a feed holds, its version (for ETag/304), its body.

A calendar app polls a feed every few minutes for as long as the member keeps it, so the
answer "nothing changed" is one indexed aggregate query: how many bookings the feed holds and
when the latest of them changed. Only a change pays for loading and writing the bookings.
"""
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import CharField, Count, Func, Max, Q, Value

from .calendar import Audience, Entry, render_calendar
from .models import Allocation, Booking, CalendarFeed, Unit, display_name_of
from .parsing import format_device_set, parse_duration

FORMAT_VERSION = 1  # bump when the feed's text changes shape, so clients fetch it again
TOUCH_EVERY = timedelta(hours=1)  # last_used_at is kept to the hour: no write per poll


@dataclass(frozen=True)
class Version:
    etag: str  # quoted, as in the header
    last_modified: datetime


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
    """What the feed's body depends on, hashed: its bookings' count and latest change, and its own settings."""
    state = bookings_of(feed, now).aggregate(count=Count("pk"), latest=Max("updated_at"))
    last_modified = max(filter(None, [state["latest"], feed.created_at]))
    parts = [
        FORMAT_VERSION, feed.pk, feed.scope, feed.server_id, feed.room_id, state["count"], state["latest"] and state["latest"].isoformat(),
        base_url, settings.SITE_URL, settings.CALENDAR_SHOW_OTHERS_PURPOSES, settings.CALENDAR_REFRESH,
        settings.CALENDAR_HISTORY, settings.CALENDAR_KEEP_CANCELLED,
    ]
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()
    return Version(etag=f'"{digest}"', last_modified=last_modified)


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


ENTRY_COLUMNS = (
    "pk", "user_id", "purpose", "status", "server_id", "whole_server", "room_id", "sequence",
    "server__name", "server__location", "room__name", "room__location",
    "user__username", "user__first_name", "user__last_name", "user__profile__display_name",
    "ical_start", "ical_end", "ical_created", "ical_modified",
)


def entries_of(bookings):
    """Calendar entries for a queryset of bookings, in two queries, without model instances."""
    rows = list(
        bookings.annotate(
            ical_start=ICalUTC("start"), ical_end=ICalUTC("end"), ical_created=ICalUTC("created_at"), ical_modified=ICalUTC("updated_at")
        ).values_list(*ENTRY_COLUMNS)
    )
    gpu_bookings = [row[0] for row in rows if row[4] and not row[5]]
    indices = {}
    if gpu_bookings:
        pairs = Allocation.objects.filter(booking_id__in=gpu_bookings, unit__kind=Unit.Kind.GPU).values_list("booking_id", "unit__device__index")
        for booking_id, index in pairs:
            indices.setdefault(booking_id, []).append(index)
    entries = []
    for (pk, user_id, purpose, status, server_id, whole, room_id, sequence, server_name, server_location, room_name,
         room_location, username, first_name, last_name, display_name, start, end, created, modified) in rows:
        if room_id:
            kind, what, location = "room", room_name, room_location
        elif whole:
            kind, what, location = "server", server_name, server_location
        else:
            kind, what, location = "gpu", f"{server_name}:{format_device_set(indices.get(pk, ()))}", server_location
        entries.append(
            Entry(
                pk=pk, user_id=user_id, who=display_name_of(display_name, first_name, last_name, username), purpose=purpose,
                status=status, kind=kind, what=what, location=location, start=start, end=end, created=created,
                modified=modified, sequence=sequence,
            )
        )
    return entries


def render(feed, now, base_url):
    """The feed's body (bytes)."""
    audience = Audience(
        viewer_id=feed.user_id,
        shared=feed.scope != CalendarFeed.Scope.MINE,
        others_purposes=settings.CALENDAR_SHOW_OTHERS_PURPOSES,
    )
    return render_calendar(
        entries_of(bookings_of(feed, now).order_by("start", "pk")),
        base_url=base_url,
        audience=audience,
        name=feed.title,
        description=_description(feed),
        refresh=parse_duration(settings.CALENDAR_REFRESH),
    )


def _description(feed):
    if feed.scope == CalendarFeed.Scope.MINE:
        return "Your labres bookings."
    if feed.scope == CalendarFeed.Scope.SERVER:
        return f"Bookings of server {feed.server.name} and its GPUs."
    if feed.scope == CalendarFeed.Scope.ROOM:
        return f"Bookings of room {feed.room.name}."
    return "Every booking in the lab."


def touch(feed, now):
    """Note that a calendar app fetched the feed, at most once an hour."""
    if feed.last_used_at is None or now - feed.last_used_at >= TOUCH_EVERY:
        CalendarFeed.objects.filter(pk=feed.pk).update(last_used_at=now)


def own_feed(user):
    """The member's personal feed, made on first use."""
    feed, _ = CalendarFeed.objects.get_or_create(user=user, scope=CalendarFeed.Scope.MINE)
    return feed


def reset(feed):
    """A new secret address for the feed; the old one answers 404 from now on."""
    feed.new_secret()
    feed.save(update_fields=["selector", "secret"])
    return feed

