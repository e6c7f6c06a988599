"""The reservations queries written as SQL for speed, each beside its twin in the ORM.

A query is written out here only where a benchmark showed the ORM version measurably slower:
these run in every booking's transaction (bench/booking.py) or on every calendar poll
(bench/calendars.py), and bench/queries.py times each against its twin, interleaved. Each
`<name>_orm` has the same signature and gives the same result; tests/reservations/test_queries.py
checks that on the same data, on SQLite and PostgreSQL. Change both or neither.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from django.db import transaction
from django.db.models import Case, Count, IntegerField, Max, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce

from labres.db import aware_datetime, prepared_cursor

from .models import Allocation, Booking, CalendarFeed, Device, FeedStamp, Server, Unit

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def server_units(server: Server | str, indices: list[int] | None) -> list[Unit]:
    """The units of a server (a Server or its name, any case): the GPUs `indices`, or for None the server and all its GPUs.

    Each unit comes with its server (one instance for all) and its GPU; their other fields load if
    asked for. Unordered; unknown indices, an unknown server or retired ones simply give fewer units.
    """
    connection = transaction.get_connection()
    q, alias = connection.ops.quote_name, connection.alias
    sql = (
        f"SELECT u.id, u.kind, u.device_id, s.id, s.name, s.active, s.cpu_cores, s.memory_gib, s.requires_approval,"
        f" d.{q('index')}, d.active FROM {Unit._meta.db_table} u JOIN {Server._meta.db_table} s ON s.id = u.server_id"
        f" LEFT JOIN {Device._meta.db_table} d ON d.id = u.device_id WHERE "
    )
    params: list[object] = []
    if isinstance(server, Server):
        sql += "s.id = %s"
        params.append(server.pk)
    else:
        sql += "UPPER(s.name) = UPPER(%s)"
        params.append(str(server).strip())
    if indices is not None:
        sql += f" AND u.kind = %s AND d.{q('index')} IN ({', '.join(['%s'] * len(indices))})" if indices else " AND 1 = 0"
        params += [Unit.Kind.GPU, *indices] if indices else []
    with prepared_cursor(connection) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    found: Server | None = None
    units = []
    for unit_id, kind, device_id, server_id, name, active, cpu_cores, memory_gib, requires_approval, index, device_active in rows:
        if found is None:
            found = Server.from_db(  # fields in the model's order, as from_db wants them
                alias, ["id", "name", "active", "cpu_cores", "memory_gib", "requires_approval"],
                [server_id, name, bool(active), cpu_cores, memory_gib, bool(requires_approval)],
            )
        unit = Unit.from_db(alias, ["id", "kind", "server_id", "device_id", "room_id"], [unit_id, kind, server_id, device_id, None])
        unit.server = found
        if device_id is not None:
            unit.device = Device.from_db(alias, ["id", "server_id", "index", "active"], [device_id, server_id, index, bool(device_active)])
            unit.device.server = found
        units.append(unit)
    return units


def server_units_orm(server: Server | str, indices: list[int] | None) -> list[Unit]:
    """server_units in the ORM."""
    units = Unit.objects.select_related("server", "device")
    if isinstance(server, Server):
        units = units.filter(server_id=server.pk)
    else:
        units = units.filter(server__name__iexact=str(server).strip())
    if indices is not None:
        units = units.filter(kind=Unit.Kind.GPU, device__index__in=indices) if indices else units.none()
    units = list(units)
    for unit in units:
        unit.server = units[0].server
        if unit.device is not None:
            assert unit.server is not None, "the units of a server, each given it above"
            unit.device.server = unit.server
    return units


def member_holds(
    user: User, since: float, until: float, exclude: Booking | None,
) -> list[tuple[int, float, float, int]]:
    """The member's GPU holds overlapping [since, until) (epoch seconds): (server id, start, end, GPUs) per server booking.

    Times in epoch seconds (floats); GPUs counts the booking's active allocations less a whole
    server's own unit; bookings holding no GPU are left out. Read from the member's bookings in
    the window (index user, end), each with a count of its allocations (index booking): a plan that
    depends neither on how many allocations everyone holds in the window nor on whether the
    planner's statistics have seen this week's bookings yet. PostgreSQL writes the times as
    float8 seconds; a double holds today's epoch to a quarter of a microsecond, and the database
    and datetime.timestamp() both round the exact value, so equal times stay equal.
    """
    connection = transaction.get_connection()
    q = connection.ops.quote_name
    statuses = list(Booking.HOLDING)
    adapt = connection.ops.adapt_datetimefield_value
    if connection.vendor == "postgresql":
        times = f"EXTRACT(EPOCH FROM b.start)::float8, EXTRACT(EPOCH FROM b.{q('end')})::float8"
    else:
        times = f"b.start, b.{q('end')}"
    with prepared_cursor(connection) as cursor:
        cursor.execute(
            f"SELECT b.server_id, {times},"
            f" (SELECT COUNT(*) FROM {Allocation._meta.db_table} a WHERE a.booking_id = b.id AND a.active)"
            f" - CASE WHEN b.whole_server THEN 1 ELSE 0 END"
            f" FROM {Booking._meta.db_table} b WHERE b.user_id = %s AND b.status IN ({', '.join(['%s'] * len(statuses))})"
            f" AND b.server_id IS NOT NULL AND b.start < %s AND b.{q('end')} > %s AND b.id <> %s",
            # Adapted as the ORM would: SQLite compares the text, which must be naive UTC like the stored values.
            [user.pk, *statuses, adapt(_from_seconds(until)), adapt(_from_seconds(since)), exclude.pk if exclude is not None else 0],
        )
        rows = cursor.fetchall()
    if connection.vendor != "postgresql":
        rows = [(server_id, aware_datetime(a).timestamp(), aware_datetime(b).timestamp(), gpus) for server_id, a, b, gpus in rows]
    return [row for row in rows if row[3] > 0]


def member_holds_orm(
    user: User, since: float, until: float, exclude: Booking | None,
) -> list[tuple[int, float, float, int]]:
    """member_holds in the ORM."""
    held = Allocation.objects.filter(booking=OuterRef("pk"), active=True).order_by().values("booking").annotate(n=Count("pk")).values("n")
    rows = (
        Booking.objects.filter(
            user=user, status__in=Booking.HOLDING, server__isnull=False, start__lt=_from_seconds(until), end__gt=_from_seconds(since),
        )
        .exclude(pk=exclude.pk if exclude is not None else 0)
        .annotate(gpus=Coalesce(Subquery(held), 0) - Case(When(whole_server=True, then=Value(1)), default=Value(0), output_field=IntegerField()))
        .values_list("server_id", "start", "end", "gpus")
    )
    return [(server_id, a.timestamp(), b.timestamp(), gpus) for server_id, a, b, gpus in rows if gpus > 0]


def _from_seconds(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class Share(NamedTuple):
    """A booking's take of a server's pooled capacities."""

    start: datetime
    end: datetime
    whole_server: bool
    cpu_cores: int
    memory_gib: int


def server_shares(server: Server, since: datetime, until: datetime, exclude: Booking | None) -> list[Share]:
    """Bookings of the server that take some of its capacity during [since, until): Share rows, unordered."""
    connection = transaction.get_connection()
    q = connection.ops.quote_name
    statuses = list(Booking.HOLDING)
    adapt = connection.ops.adapt_datetimefield_value
    with prepared_cursor(connection) as cursor:
        cursor.execute(
            f"SELECT start, {q('end')}, whole_server, cpu_cores, memory_gib FROM {Booking._meta.db_table}"
            f" WHERE server_id = %s AND status IN ({', '.join(['%s'] * len(statuses))}) AND start < %s AND {q('end')} > %s"
            f" AND (cpu_cores > 0 OR memory_gib > 0 OR whole_server) AND id <> %s",
            # Adapted as the ORM would: SQLite compares the text, which must be naive UTC like the stored values.
            [server.pk, *statuses, adapt(until), adapt(since), exclude.pk if exclude is not None else 0],
        )
        rows = cursor.fetchall()
    return [Share(aware_datetime(start), aware_datetime(end), bool(whole), cpus, memory) for start, end, whole, cpus, memory in rows]


def server_shares_orm(server: Server, since: datetime, until: datetime, exclude: Booking | None) -> list[Share]:
    """server_shares in the ORM."""
    rows = (
        Booking.objects.filter(server_id=server.pk, status__in=Booking.HOLDING, start__lt=until, end__gt=since)
        .filter(Q(cpu_cores__gt=0) | Q(memory_gib__gt=0) | Q(whole_server=True))
        .exclude(pk=exclude.pk if exclude is not None else 0)
        .values_list("start", "end", "whole_server", "cpu_cores", "memory_gib")
    )
    return [Share(*row) for row in rows]



# The column each feed scope filters bookings on (the lab's feed holds them all).
FEED_SCOPE_COLUMNS = {"mine": "user_id", "server": "server_id", "room": "room_id"}


def feed_counts(
    feed: CalendarFeed, history: datetime, keep_cancelled: datetime,
) -> tuple[int, datetime | None, int | None, datetime | None]:
    """What a feed's version depends on: (bookings it holds, their latest updated_at, FeedStamp number, FeedStamp changed_at).

    The bookings are those feeds.bookings_of gives: ended at `history` or later, cancelled ones
    only if changed at `keep_cancelled` or later. Times aware (UTC) or None; one query.
    """
    connection = transaction.get_connection()
    q = connection.ops.quote_name
    adapt = connection.ops.adapt_datetimefield_value
    stamp = FeedStamp._meta.db_table
    sql = (
        f"SELECT COUNT(*), MAX(updated_at), (SELECT number FROM {stamp} WHERE id = 1), (SELECT changed_at FROM {stamp} WHERE id = 1)"
        f" FROM {Booking._meta.db_table} WHERE {q('end')} >= %s AND NOT (status = %s AND updated_at < %s)"
    )
    params: list[object] = [adapt(history), Booking.Status.CANCELLED.value, adapt(keep_cancelled)]
    column = FEED_SCOPE_COLUMNS.get(feed.scope)
    if column:
        sql += f" AND {column} = %s"
        params.append(getattr(feed, column))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        count, latest, number, changed = cursor.fetchone()
    return count, aware_datetime(latest), number, aware_datetime(changed)


def feed_counts_orm(
    feed: CalendarFeed, history: datetime, keep_cancelled: datetime,
) -> tuple[int, datetime | None, int | None, datetime | None]:
    """feed_counts in the ORM (two queries)."""
    stamp = FeedStamp.objects.filter(pk=1)
    bookings = Booking.objects.filter(end__gte=history).exclude(Q(status=Booking.Status.CANCELLED) & Q(updated_at__lt=keep_cancelled))
    column = FEED_SCOPE_COLUMNS.get(feed.scope)
    if column:
        bookings = bookings.filter(**{column: getattr(feed, column)})
    row = bookings.aggregate(count=Count("pk"), latest=Max("updated_at"))
    number, changed = stamp.values_list("number", "changed_at").first() or (None, None)
    return row["count"], row["latest"], number, changed


def active_feed(selector: str) -> CalendarFeed | None:
    """The calendar feed with this selector if its member is active, else None (one small join)."""
    user_table = CalendarFeed._meta.get_field("user").related_model._meta.db_table
    sql = (
        f"SELECT f.* FROM {CalendarFeed._meta.db_table} f INNER JOIN {user_table} u ON u.id = f.user_id"
        " WHERE f.selector = %s AND u.is_active"
    )
    return next(iter(CalendarFeed.objects.raw(sql, [selector])), None)


def active_feed_orm(selector: str) -> CalendarFeed | None:
    """active_feed in the ORM."""
    return CalendarFeed.objects.filter(selector=selector, user__is_active=True).first()
