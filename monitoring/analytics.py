"""Usage analytics: booked GPU-hours against used GPU-hours over a period, per server, member and group;
the bookings that used least of what they booked; and when each server is busy (hour of week).

Used time is time at or above GPU_ACTIVE_PERCENT. Everything comes from a fixed handful of
grouped queries, whatever the size of the lab:

- booked: the GPU allocations of holding bookings, clipped to the period, grouped per booking;
- used during a booking: its settled BookingUsage when the booking ended inside the period
  (computed from the finest telemetry, as the booking page shows it); otherwise (running,
  not settled yet, or cut by the period's edges: a few per GPU) from the hourly rollups of
  its GPUs during its allocations, summed in SQL (see `computed_use`);
- used per server, and the heat map: the hourly rollups grouped per server and hour of week
  (see `server_use_and_heat`).

A month of a large lab's rollups is hundreds of thousands of rows, so the views ask for
`cached_usage_report`, which keeps a report for a few minutes.
"""
import heapq
import logging
import math
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone as dt_timezone
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import NotSupportedError
from django.db.models import Case, Count, F, FloatField, Func, IntegerField, Max, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import Cast, Greatest, Least, Mod, NullIf

from reservations.models import Allocation, Booking, Server, display_name_of
from reservations.parsing import describe_target

from . import queries
from .models import Alert, GpuHour

logger = logging.getLogger(__name__)
NO_GROUP = "no group"
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
LONGEST_PERIOD_DAYS = 366
IDLE_MIN_BOOKED_HOURS = 1.0  # shorter bookings say little about waste
IDLE_LIST_LENGTH = 10
# Bookings whose use is computed from rollups are named by id up to this many, else by the period.
COMPUTE_BY_ID_AT_MOST = 2000
HOURS_PER_WEEK = 168
# 1970-01-01, where epoch hours count from, was a Thursday: hour 72 of a week that starts on Monday.
EPOCH_HOUR_OF_WEEK = 72
ONE_HOUR = timedelta(hours=1)
DEFAULT_CACHE_SECONDS = 300
UTC = dt_timezone.utc


class EpochHours(Func):
    """A datetime as hours since 1970-01-01 UTC (a float), so that overlaps of intervals are plain
    arithmetic in SQL, the same on PostgreSQL and SQLite."""

    arity = 1
    output_field = FloatField()

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError(f"EpochHours is written for PostgreSQL and SQLite, not {connection.vendor}.")

    def as_postgresql(self, compiler, connection, **extra):
        # date_part, unlike EXTRACT, returns a double rather than a numeric: much cheaper per row.
        return Func.as_sql(self, compiler, connection, template="(date_part('epoch', %(expressions)s) / 3600.0)", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        # Django stores datetimes as UTC text, which julianday() reads; 2440587.5 is 1970-01-01 as a Julian day.
        return Func.as_sql(self, compiler, connection, template="((julianday(%(expressions)s) - 2440587.5) * 24.0)", **extra)


class BucketHour(Func):
    """A rollup bucket (a whole hour) as the number of hours since 1970-01-01 UTC, an integer."""

    arity = 1
    output_field = IntegerField()

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError(f"BucketHour is written for PostgreSQL and SQLite, not {connection.vendor}.")

    def as_postgresql(self, compiler, connection, **extra):
        return Func.as_sql(self, compiler, connection, template="(date_part('epoch', %(expressions)s)::bigint / 3600)", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        # Rounded: julianday's float is a little off a whole hour either way.
        return Func.as_sql(
            self, compiler, connection, template="CAST(round((julianday(%(expressions)s) - 2440587.5) * 24.0) AS INTEGER)", **extra
        )


# --- the period ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Whole days first_day..last_day in a time zone: [start, end) in UTC, the end cut at now."""

    first_day: date
    last_day: date
    zone: zoneinfo.ZoneInfo
    start: datetime
    end: datetime

    @classmethod
    def of(cls, first_day, last_day, zone, now):
        start = datetime.combine(first_day, time.min, tzinfo=zone).astimezone(UTC)
        end = min(datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=zone).astimezone(UTC), now)
        return cls(first_day, last_day, zone, start, max(start, end))

    @property
    def hours(self):
        return (self.end - self.start).total_seconds() / 3600

    @property
    def first_bucket(self):
        """The hourly bucket the period starts in (a zone may be off UTC by part of an hour)."""
        return self.start.replace(minute=0, second=0, microsecond=0)

    def epoch_hours(self):
        """(start, end) as hours since the epoch, for the overlap arithmetic in SQL."""
        return self.start.timestamp() / 3600, self.end.timestamp() / 3600

    def offsets(self):
        """[(from, utc offset in hours)]: the zone's offset from each of its changes in the period on (the first from its start)."""
        def offset(moment):
            return moment.astimezone(self.zone).utcoffset().total_seconds() / 3600

        changes = [(self.first_bucket, offset(self.first_bucket))]
        day = self.first_bucket
        while day < self.end:
            following = day + timedelta(days=1)
            if offset(following) != changes[-1][1]:
                hour = day  # the change is within this day: find its hour
                while offset(hour) == changes[-1][1]:
                    hour += ONE_HOUR
                changes.append((hour, offset(hour)))
            day = following
        return changes


def preset_periods(today):
    """The periods offered as one click: [(key, label, first_day, last_day)]."""
    return [
        ("7d", "Last 7 days", today - timedelta(days=7), today),
        ("30d", "Last 30 days", today - timedelta(days=30), today),
        ("month", "This month", today.replace(day=1), today),
    ]


# --- what the report holds ---------------------------------------------------------------


@dataclass
class Tally:
    """Booked GPU-hours of something, and how many of them were used (never more than booked: use outside
    a booking is unbooked use, counted apart)."""

    booked: float = 0.0
    used: float = 0.0

    @property
    def idle(self):
        """Booked GPU-hours left unused."""
        return max(0.0, self.booked - self.used)

    @property
    def share(self):
        """Used over booked, from 0 to 1; None if nothing was booked."""
        return self.used / self.booked if self.booked else None

    @property
    def share_percent(self):
        share = self.share
        return None if share is None else round(100 * share)

    @property
    def idle_percent(self):
        """The idle part of booked, in percent: with share_percent, 100."""
        share = self.share_percent
        return None if share is None else 100 - share


@dataclass
class ServerUsage(Tally):
    """A server's GPUs: booked, used during bookings (`used`), and used on every hour, booked or not (`used_anytime`)."""

    server_id: int = 0
    name: str = ""
    gpus: int = 0
    capacity: float = 0.0  # the GPU-hours the period offered
    used_anytime: float = 0.0
    util_sum: float = 0.0
    samples: int = 0

    @property
    def unbooked(self):
        """GPU-hours used outside any booking (telemetry is rolled up per hour: a little noise is no use)."""
        return max(0.0, self.used_anytime - self.used)

    @property
    def util_mean(self):
        """Mean utilization of its GPUs over the period, percent; None without telemetry."""
        return self.util_sum / self.samples if self.samples else None


@dataclass
class MemberUsage(Tally):
    user_id: int = 0
    name: str = ""
    username: str = ""
    groups: list = field(default_factory=list)
    bookings: int = 0


@dataclass
class GroupUsage(Tally):
    name: str = ""
    members: int = 0
    bookings: int = 0


@dataclass
class BookingUse(Tally):
    """One booking's GPUs within the period."""

    booking_id: int = 0
    user_id: int = 0
    server_id: int | None = None
    gpus: int = 0
    util_mean: float | None = None  # percent, over its GPUs while it held them; None without telemetry
    start: datetime | None = None
    end: datetime | None = None
    purpose: str = ""
    what: str = ""
    member: str = ""
    username: str = ""
    idle_alert: bool = False


@dataclass
class HeatRow:
    server: str
    utils: list  # mean utilization (percent, or None without readings) per local hour of week, Monday 00:00 first


@dataclass
class UsageReport:
    period: Period
    total: Tally  # booked, and used during bookings
    used_anytime: float  # used GPU-hours of every GPU, booked or not
    capacity: float
    unbooked: float  # used GPU-hours outside any booking, summed per server
    servers: list  # ServerUsage by name
    members: list  # MemberUsage, most booked first
    groups: list  # GroupUsage, most booked first, "no group" last
    idle: list  # BookingUse: the bookings that used least of what they booked
    heat: list  # HeatRow per server
    bookings: list | None = None  # BookingUse for every GPU booking in the period, if asked for


# --- the report ------------------------------------------------------------------------------


def cached_usage_report(period, *, every_booking=False):
    """usage_report, kept in the cache for USAGE_REPORT_CACHE_SECONDS (default 5 minutes; 0: not kept).

    A lab's month of hourly rollups is hundreds of thousands of rows: aggregating them takes a
    few hundred milliseconds, and the figures, made of hourly buckets, barely move in a few
    minutes. The report says when it was made (period.end, for a period that reaches now).
    """
    seconds = getattr(settings, "USAGE_REPORT_CACHE_SECONDS", DEFAULT_CACHE_SECONDS)
    if not seconds:
        return usage_report(period, every_booking=every_booking)
    key = _report_key(period, every_booking)
    try:
        report = cache.get(key)
    except Exception as error:  # the cache is down: compute the report, as with caching off
        logger.warning("usage report not cached: the cache failed (%s: %s)", type(error).__name__, error)
        return usage_report(period, every_booking=every_booking)
    if report is None:
        report = usage_report(period, every_booking=every_booking)
        try:
            cache.set(key, report, seconds)
        except Exception as error:
            logger.warning("usage report not cached: the cache failed (%s: %s)", type(error).__name__, error)
    return report


def warm_usage_reports(now=None):
    """Compute the one-click periods in the lab's time zone ahead of the members, so nobody waits
    for a fresh report; beat runs it a little more often than the cache keeps one. Returns how many."""
    seconds = getattr(settings, "USAGE_REPORT_CACHE_SECONDS", DEFAULT_CACHE_SECONDS)
    if not seconds:
        return 0
    now = now or datetime.now(UTC)
    zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    periods = [Period.of(first, last, zone, now) for _, _, first, last in preset_periods(now.astimezone(zone).date())]
    for period in periods:
        cache.set(_report_key(period, False), usage_report(period), seconds)
    return len(periods)


def _report_key(period, every_booking):
    return f"labres:usage:v2:{period.zone}:{period.first_day}:{period.last_day}:{int(every_booking)}"


def usage_report(period, *, every_booking=False):
    """Everything the usage page shows for `period`, from a constant number of queries.

    every_booking also describes every booking of the period (the CSV by booking); otherwise
    only the idle list is described.
    """
    tallies = booking_tallies(period)
    servers, heat = server_use_and_heat(period)
    members = {}
    for tally in tallies:
        member = members.get(tally.user_id)
        if member is None:
            member = members[tally.user_id] = MemberUsage(user_id=tally.user_id)
        member.booked += tally.booked
        member.used += tally.used
        member.bookings += 1
        server = servers.get(tally.server_id)
        if server is not None:
            server.booked += tally.booked
            server.used += tally.used
    members, groups = name_members(members)
    idle = idle_bookings(tallies)
    every = [tally.use() for tally in tallies] if every_booking else None
    describe(every if every_booking else idle, members, period, many=every_booking)
    server_list = sorted(servers.values(), key=lambda s: s.name)
    return UsageReport(
        period=period,
        total=Tally(sum(t.booked for t in tallies), sum(t.used for t in tallies)),
        used_anytime=sum(s.used_anytime for s in server_list),
        capacity=sum(s.capacity for s in server_list),
        unbooked=sum(s.unbooked for s in server_list),
        servers=server_list,
        members=members,
        groups=groups,
        idle=idle,
        heat=heat,
        bookings=sorted(every, key=lambda b: (b.start, b.booking_id)) if every_booking else None,
    )


def _gpu_allocations(period):
    """The GPU allocations of holding bookings that overlap the period."""
    allocations = Allocation.objects.active().overlapping(period.start, period.end)
    return allocations.filter(unit__device__isnull=False, booking__status__in=Booking.HOLDING)


class BookingTally(NamedTuple):
    """A booking's figures in the period, before it is described (cheap: there are thousands)."""

    booking_id: int
    user_id: int
    server_id: int | None
    gpus: int
    booked: float
    used: float
    util_mean: float | None

    def use(self):
        return BookingUse(
            booked=self.booked, used=self.used, booking_id=self.booking_id, user_id=self.user_id,
            server_id=self.server_id, gpus=self.gpus, util_mean=self.util_mean,
        )


def booking_tallies(period):
    """[BookingTally] for each GPU booking in the period.

    Booked is clipped to the period. Used and the mean come from the settled BookingUsage for
    a booking wholly inside the period; for the others (running, not settled yet, or cut by the
    period's edges: a few per GPU) from `computed_use`.
    """
    p0, p1 = period.epoch_hours()
    clipped = Least(EpochHours("end"), Value(p1)) - Greatest(EpochHours("start"), Value(p0))
    cut = Case(When(Q(start__lt=period.start) | Q(end__gt=period.end), then=Value(1)), default=Value(0))
    rows = queries.plain_rows(
        _gpu_allocations(period)
        .values_list("booking_id", "booking__user_id", "booking__server_id")
        .annotate(
            gpus=Count("id"), booked=Sum(clipped), cut=Max(cut), stored_used=Max("booking__usage__used_gpu_hours"),
            stored_util=Max("booking__usage__gpu_util_mean"),
        )
        .order_by()
    )
    tallies, to_compute = [], []
    for booking_id, user_id, server_id, gpus, booked, cut, stored_used, stored_util in rows:
        if stored_used is None or cut:
            to_compute.append(len(tallies))
            stored_used, stored_util = 0.0, None  # unless the rollups say otherwise
        booked = booked or 0.0
        tallies.append(BookingTally(booking_id, user_id, server_id, gpus, booked, min(stored_used, booked), stored_util))
    if to_compute:
        computed = computed_use(period, [tallies[i].booking_id for i in to_compute])
        for i in to_compute:
            used, util = computed.get(tallies[i].booking_id, (0.0, None))
            tallies[i] = tallies[i]._replace(used=min(used, tallies[i].booked), util_mean=util)
    return tallies


def computed_use(period, booking_ids):
    """{booking id: (used GPU-hours, mean utilization or None)} of these bookings' GPUs in the period, from hourly rollups.

    Each allocation of the bookings sums the rollups of its GPU that overlap it (bucket >
    allocation start - 1 h and bucket < allocation end), in a subquery the (device, bucket)
    index answers; the allocations are then added up per booking. Rollups are hourly, so an
    hour shared with a booking's edge (or the period's) is shared pro rata: a bucket counts
    for the part of its hour inside both the booking and the period, as though the GPU's
    activity were spread evenly over the hour. A booking from 10:30 to 12:00 thus gets half of
    the 10:00 bucket's active time, though all of it may have come after 10:30, or none: the
    error is at most one hour's activity at each end of a booking.
    """
    p0, p1 = period.epoch_hours()
    hour = EpochHours("bucket")
    inside = Least(hour + 1, EpochHours(OuterRef("end")), Value(p1)) - Greatest(hour, EpochHours(OuterRef("start")), Value(p0))
    held = GpuHour.objects.filter(
        Q(device_id=OuterRef("unit__device_id"), bucket__gte=period.first_bucket, bucket__lt=period.end),
        Q(bucket__gt=OuterRef("start") - ONE_HOUR) & Q(bucket__lt=OuterRef("end")),
    )

    def total(expression):
        one_row = held.order_by().annotate(all=Value(1)).values("all")  # group all the rows into one
        return Subquery(one_row.annotate(total=Sum(expression)).values("total"), output_field=FloatField())

    if len(booking_ids) <= COMPUTE_BY_ID_AT_MOST:
        allocations = Allocation.objects.active().filter(booking_id__in=booking_ids, unit__device__isnull=False)
    else:  # the same allocations: a long list of ids would cost more than it saves (and SQLite limits it)
        allocations = _gpu_allocations(period).filter(Q(booking__usage__isnull=True) | Q(start__lt=period.start) | Q(end__gt=period.end))
    with_samples = Case(When(samples__gt=0, then=inside), default=Value(0.0), output_field=FloatField())
    rows = queries.plain_rows(
        allocations.values_list("booking_id")
        .annotate(
            used=Sum(total(_active_share() * inside)),
            util=Sum(total(Cast("gpu_util_sum", FloatField()) / NullIf(F("samples"), 0) * inside)),
            weight=Sum(total(with_samples)),
        )
        .order_by()
    )
    return {booking_id: (used or 0.0, util / weight if weight else None) for booking_id, used, util, weight in rows}


def _active_share():
    """The part of a bucket's time its GPU was active: active samples over samples (null without samples)."""
    return Cast("active_samples", FloatField()) / NullIf(F("samples"), 0)


def server_use_and_heat(period):
    """({server id: ServerUsage with used_anytime, utilization and capacity}, [HeatRow]) from two queries.

    Used anytime counts every GPU-hour of the server's GPUs in the period, booked or not; a bucket cut
    by the period's edges counts for the part inside. The heat map is the mean utilization
    (utilization summed over samples) per server and hour of week in the period's zone; a
    bucket counts in the local hour it starts in.

    The rows are grouped by UTC hour of week (integer arithmetic on the bucket, cheap per row)
    and by the stretch of the period the zone's UTC offset holds in; each group is then moved by
    that offset. The same as grouping by ExtractIsoWeekDay and ExtractHour with the zone, without
    a time zone conversion on each of up to a few hundred thousand rows.
    """
    servers = {
        pk: ServerUsage(server_id=pk, name=name, gpus=gpus, capacity=gpus * period.hours)
        for pk, name, gpus in Server.objects.filter(devices__isnull=False).values_list("pk", "name").annotate(Count("devices"))
    }
    offsets = period.offsets()
    stretch = Value(0)
    if len(offsets) > 1:  # the latest change a bucket is on or after names its stretch
        changes = [When(bucket__gte=since, then=Value(i)) for i, (since, _) in enumerate(offsets) if i]
        stretch = Case(*reversed(changes), default=Value(0))
    rows = queries.plain_rows(
        GpuHour.objects.filter(bucket__gte=period.first_bucket, bucket__lt=period.end)
        .values_list("device__server_id", stretch, Mod(BucketHour("bucket") + EPOCH_HOUR_OF_WEEK, HOURS_PER_WEEK))
        .annotate(
            used=Sum(_active_share() * _edge_weights(period)),
            # Summed as a float: in PostgreSQL the SUM of a bigint is a numeric, slower and a Decimal.
            util_sum=Sum(Cast("gpu_util_sum", FloatField())),
            samples=Sum("samples"),
        )
        .order_by()
    )
    sums = defaultdict(lambda: [[0, 0] for _ in range(HOURS_PER_WEEK)])
    for server_id, stretch_index, utc_hour_of_week, used, util_sum, samples in rows:
        server = servers.get(server_id)
        if server is None:
            continue
        server.used_anytime += used or 0.0
        server.util_sum += util_sum or 0
        server.samples += samples or 0
        # A bucket's local hour is its UTC hour plus the offset, rounded down (some zones are off by half hours).
        local = (int(utc_hour_of_week) + math.floor(offsets[int(stretch_index)][1])) % HOURS_PER_WEEK
        cell = sums[server_id][local]
        cell[0] += util_sum or 0
        cell[1] += samples or 0
    heat = [
        HeatRow(server.name, [util / samples if samples else None for util, samples in sums[server.server_id]])
        for server in sorted(servers.values(), key=lambda s: s.name)
    ]
    return servers, heat


def _edge_weights(period):
    """How much of each bucket's hour lies in the period: 1, except for the buckets its start and end cut."""
    first, last = period.first_bucket, period.end.replace(minute=0, second=0, microsecond=0)
    p0, p1 = period.epoch_hours()

    def inside(bucket):
        b = bucket.timestamp() / 3600
        return max(0.0, min(b + 1, p1) - max(b, p0))

    cut = [When(bucket=bucket, then=Value(inside(bucket))) for bucket in sorted({first, last}) if inside(bucket) < 1]
    return Case(*cut, default=Value(1.0), output_field=FloatField()) if cut else Value(1.0)


def name_members(members):
    """([MemberUsage] most booked first, [GroupUsage] most booked first and 'no group' last), named, in two queries.

    A member in several groups counts in each; members in none count under 'no group'.
    """
    User = get_user_model()
    for pk, username, first, last, display in User.objects.filter(pk__in=members).values_list(
        "pk", "username", "first_name", "last_name", "profile__display_name"
    ):
        member = members[pk]
        member.username = username
        member.name = display_name_of(display, first, last, username)
    memberships = User.groups.through.objects.filter(user_id__in=members).order_by("group__name")
    for user_id, group in memberships.values_list("user_id", "group__name"):
        members[user_id].groups.append(group)
    groups = {}
    for member in members.values():
        for name in member.groups or [NO_GROUP]:
            group = groups.get(name)
            if group is None:
                group = groups[name] = GroupUsage(name=name)
            group.booked += member.booked
            group.used += member.used
            group.members += 1
            group.bookings += member.bookings
    member_list = sorted(members.values(), key=lambda m: (-m.booked, m.name.lower()))
    group_list = sorted(groups.values(), key=lambda g: (g.name == NO_GROUP, -g.booked, g.name.lower()))
    return member_list, group_list


def idle_bookings(tallies, limit=IDLE_LIST_LENGTH):
    """[BookingUse] of the bookings with telemetry and an hour or more booked that used the least of it.

    Lowest used share first; on a tie, the one that left more GPU-hours idle.
    """
    candidates = (t for t in tallies if t.booked >= IDLE_MIN_BOOKED_HOURS and t.util_mean is not None)
    least = heapq.nsmallest(limit, candidates, key=lambda t: (t.used / t.booked, -t.booked, t.booking_id))
    return [tally.use() for tally in least]


def describe(bookings, members, period, *, many=False):
    """Fill in when, what, who and whether an idle alert was raised, for these bookings, in two queries.

    many: the bookings are every one of the period, so the period's filter names them (a long
    list of ids would be slower, and SQLite limits how long it may be).
    """
    if not bookings:
        return
    names = {m.user_id: m for m in members}
    by_id = {b.booking_id: b for b in bookings}
    allocations = _gpu_allocations(period)
    alerts = Alert.objects.filter(kind=Alert.Kind.IDLE_BOOKING)
    if many:
        alerts = alerts.filter(booking__start__lt=period.end, booking__end__gt=period.start)
    else:
        allocations = allocations.filter(booking_id__in=by_id)
        alerts = alerts.filter(booking_id__in=by_id)
    indices, targets = defaultdict(list), {}
    for booking_id, index, server, whole, start, end, purpose in allocations.values_list(
        "booking_id", "unit__device__index", "booking__server__name", "booking__whole_server",
        "booking__start", "booking__end", "booking__purpose",
    ):
        indices[booking_id].append(index)
        targets[booking_id] = (server, whole, start, end, purpose)
    alerted = set(alerts.values_list("booking_id", flat=True))
    for booking in bookings:
        server, whole, booking.start, booking.end, booking.purpose = targets[booking.booking_id]
        # As Booking.what writes it: thalys:0-1, or thalys (whole server).
        booking.what = describe_target(server, indices[booking.booking_id], whole=whole)
        member = names.get(booking.user_id)
        if member is not None:
            booking.member, booking.username = member.name, member.username
        booking.idle_alert = booking.booking_id in alerted
