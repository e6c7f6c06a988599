"""The availability timeline and the room week: who holds what when, ready to draw.

Everything the pages draw is worked out here as plain dataclasses, with positions already in
percent of the window, so the templates only loop. Whatever the size of the lab, the timeline
costs two queries: one for the rows (every GPU, server and room, as units) and one for the
bookings overlapping the window, each with the ids of the units it holds; a third, where servers
declare pooled CPU cores or memory, reads the shares booked on all of them for their usage bands.

Windows are local days in the member's time zone: a day runs from local midnight to local
midnight, so a week holding a daylight-saving change lasts 167 or 169 hours, and positions
are proportional to real elapsed time.
"""
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from html import escape
from urllib.parse import urlencode

from django.db.models import Aggregate, CharField, OuterRef, Q, Subquery
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe

from .models import Allocation, Booking, Room, Unit, display_name_of, member_name
from .parsing import describe_target, format_span
from .selectors import LOOKAHEAD

VIEWS = ("day", "week")
# Dates the pages accept; outside them a window could overflow datetime arithmetic.
EARLIEST_DAY = date(1970, 1, 1)
LATEST_DAY = date(2999, 12, 1)
SNAP = timedelta(minutes=30)
ROOM_DAY_HOURS = (7, 21)  # the room week shows these hours unless a booking falls outside


# --- windows and time helpers --------------------------------------------------------------


def parse_day(text):
    """Read 'YYYY-MM-DD' into a date within the range the pages accept; None if it is not one."""
    try:
        day = date.fromisoformat((text or "").strip())
    except ValueError:
        return None
    return day if EARLIEST_DAY <= day <= LATEST_DAY else None


def local_at(day, hour, zone):
    """The instant a local day reaches an hour, in UTC.

    In UTC because Python subtracts two datetimes of one zone by their wall clocks: across a
    daylight-saving change that is an hour off. Instants in UTC subtract as real time.
    """
    return timezone.make_aware(datetime.combine(day, time(hour)), zone).astimezone(UTC)


def local_midnight(day, zone):
    """The instant a local day begins (its first existing minute, where midnight is skipped), in UTC."""
    return local_at(day, 0, zone)


def monday_of(day):
    return day - timedelta(days=day.weekday())


def next_half_hour(moment, zone):
    """The first local hh:00 or hh:30 at or after `moment`."""
    local = timezone.localtime(moment, zone)
    snapped = local.replace(minute=local.minute // 30 * 30, second=0, microsecond=0)
    return snapped if snapped == local else snapped + SNAP


def form_time(moment, zone):
    """How the booking form reads a time from the query: local 'YYYY-MM-DDTHH:MM'."""
    return timezone.localtime(moment, zone).strftime("%Y-%m-%dT%H:%M")


def book_url(params, start, end, zone):
    """The booking form, prefilled with a unit and a local start and end."""
    query = {**params, "start": form_time(start, zone), "end": form_time(end, zone)}
    return f"{reverse('book')}?{urlencode(query)}"


@dataclass(frozen=True)
class Window:
    """A run of whole local days: one (day view) or seven from a Monday (week view)."""

    view: str
    first_day: date
    days: int
    start: datetime  # in UTC, see local_at
    end: datetime
    zone: object

    @classmethod
    def of(cls, view, day, zone):
        first = monday_of(day) if view == "week" else day
        days = 7 if view == "week" else 1
        return cls(view, first, days, local_midnight(first, zone), local_midnight(first + timedelta(days=days), zone), zone)

    @property
    def last_day(self):
        return self.first_day + timedelta(days=self.days - 1)

    @property
    def previous_day(self):
        return self.first_day - timedelta(days=self.days)

    @property
    def next_day(self):
        return self.first_day + timedelta(days=self.days)

    @property
    def dates(self):
        return [self.first_day + timedelta(days=n) for n in range(self.days)]

    def contains(self, moment):
        return self.start <= moment < self.end

    def position(self, moment):
        """Where a moment lies, in percent of the window (below 0 or above 100 outside it)."""
        return (moment.astimezone(UTC) - self.start) / (self.end - self.start) * 100


def _pct(value):
    """A percentage as CSS wants it, short: 12.5, 0, 33.3333."""
    return f"{round(value, 4):g}"


# --- the timeline --------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    left: str  # percent of the window, for CSS
    width: str  # percent up to the next tick
    label: str
    major: bool = True
    today: bool = False


@dataclass
class Bar:
    """One booking on one row, clipped to the window. `html` is its markup, made once per booking."""

    booking_id: int
    left: float
    width: float
    who: str
    purpose: str
    title: str
    mine: bool
    html: str


@dataclass
class Row:
    kind: str  # gpu, server or room
    label: str
    detail: str
    book_query: str  # the unit as booking-form parameters, for the script that adds the times
    book_url: str  # the booking form for this unit from the window's start (or now), without a script
    unit_id: int = 0
    order: int = 0  # a GPU's index, to sort by
    link: str = ""  # a page about the unit (a room's week)
    bars: list = field(default_factory=list)

    @property
    def html(self):
        """The row's markup. A lab has hundreds of rows and a busy week thousands of bars; made here
        with f-strings, they cost a few milliseconds, where templates cost many times more: bench/pages.py's
        large week (452 rows, 4,349 bars) took 28 ms so, against 430 ms with a template include per row and
        bar, and 100 ms with the rows in a template and the bars from here (same HTML, same process)."""
        label, detail = escape(self.label), escape(self.detail)
        if self.kind == "room":
            more = f" · {detail}" if detail else ""
            head = (
                f'<span class="tl-label"><a href="{escape(self.book_url)}" title="Book {label}">{label}</a>'
                f' <small><a href="{escape(self.link)}">week</a>{more}</small></span>'
            )
        else:
            more = f" <small>{detail}</small>" if detail else ""
            head = f'<a class="tl-label" href="{escape(self.book_url)}" title="Book {label}">{label}{more}</a>'
        bars = "".join(bar.html for bar in self.bars)
        return mark_safe(
            f'<div class="tl-row {self.kind}" data-q="{escape(self.book_query)}">{head}<div class="tl-track">{bars}</div></div>'
        )


@dataclass
class ServerGroup:
    name: str
    location: str
    gpus: list = field(default_factory=list)
    whole: Row | None = None
    server_id: int = 0
    cpu_cores: int | None = None  # pooled capacities the server declares
    memory_gib: int | None = None
    band: "Band | None" = None  # how much of them is booked over the window

    @property
    def rows(self):
        return self.gpus + ([self.whole] if self.whole else [])


@dataclass
class Timeline:
    window: Window
    ticks: list
    minor_ticks: list
    groups: list
    rooms: list
    now_left: str | None  # where the now line goes, when now is inside the window

    @property
    def rows(self):
        return [row for group in self.groups for row in group.rows] + self.rooms


def build_timeline(user, *, view="week", day=None, zone=None, now=None):
    """Every active GPU, server and room as a row, with the bookings overlapping the window as bars."""
    zone = zone or timezone.get_current_timezone()
    now = now or timezone.now()
    window = Window.of(view, day or timezone.localdate(now, zone), zone)
    fallback_start = max(window.start, next_half_hour(now, zone))
    groups, rooms = _rows(window.zone, fallback_start)
    bars = _bars_by_unit(window, user)
    for unit_id, row in _rows_by_unit(groups, rooms):
        row.bars = bars.get(unit_id, [])
    _add_bands(window, groups)
    ticks, minor = _ticks(window, now)
    return Timeline(
        window=window,
        ticks=ticks,
        minor_ticks=minor,
        groups=groups,
        rooms=rooms,
        now_left=_pct(window.position(now)) if window.contains(now) else None,
    )


def _rows(zone, fallback_start):
    """Server groups (GPU rows, then the whole-server row) and room rows, from one query."""
    units = Unit.objects.filter(
        Q(kind=Unit.Kind.GPU, server__active=True, device__active=True)
        | Q(kind=Unit.Kind.SERVER, server__active=True)
        | Q(kind=Unit.Kind.ROOM, room__active=True)
    ).values_list(
        "pk", "kind", "server_id", "server__name", "server__location", "device__index", "device__model",
        "room_id", "room__name", "room__location", "room__capacity", "server__cpu_cores", "server__memory_gib",
    )
    # Every row links to the form with the same times; only the unit differs.
    form = reverse("book")
    times = urlencode({"start": form_time(fallback_start, zone), "end": form_time(fallback_start + timedelta(hours=1), zone)})
    groups, rooms = {}, []

    def row(unit_id, kind, label, detail, params, **extra):
        query = urlencode(params)
        return Row(kind=kind, label=label, detail=detail, book_query=query, book_url=f"{form}?{query}&{times}", unit_id=unit_id, **extra)

    for unit_id, kind, server_id, server, location, index, model, room_id, room, room_location, capacity, cores, memory in units:
        if kind == Unit.Kind.ROOM:
            detail = " · ".join(part for part in (f"{capacity} seats" if capacity else "", room_location) if part)
            rooms.append(row(unit_id, "room", room, detail, {"room": room}, link=reverse("room-week", args=[room_id])))
            continue
        group = groups.get(server_id)
        if group is None:
            group = groups[server_id] = ServerGroup(name=server, location=location, server_id=server_id, cpu_cores=cores, memory_gib=memory)
        if kind == Unit.Kind.GPU:
            params = {"server": server, "devices": index}
            group.gpus.append(row(unit_id, "gpu", f"{server} · GPU {index}", model, params, order=index))
        else:
            group.whole = row(unit_id, "server", describe_target(server, whole=True), "", {"server": server, "devices": ""})

    ordered = sorted(groups.values(), key=lambda group: group.name)
    for group in ordered:
        group.gpus.sort(key=lambda entry: entry.order)
        if group.whole:
            count = len(group.gpus)
            group.whole.detail = f"{count} GPU{'' if count == 1 else 's'}" if count else "CPU only"
    rooms.sort(key=lambda entry: entry.label.lower())
    return ordered, rooms


def _rows_by_unit(groups, rooms):
    for group in groups:
        for row in group.rows:
            yield row.unit_id, row
    for row in rooms:
        yield row.unit_id, row


class _UnitIds(Aggregate):
    """The unit ids of a group of allocations as text, '11,9': string_agg on PostgreSQL, group_concat on SQLite."""

    function = "GROUP_CONCAT"
    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, function="STRING_AGG", template="%(function)s((%(expressions)s)::text, ',')", **extra_context)


def _bars_by_unit(window, user):
    """{unit id: [Bar, ...] by start} for the bookings holding units in the window, from one query.

    One row per booking with the ids of the units it holds (a whole-server booking of 8 GPUs
    is one row, not nine), so each bar is made once and shared by its rows. Rows are plain
    values, not model instances: a busy week holds thousands of bookings.
    """
    units = (
        Allocation.objects.active().filter(booking=OuterRef("pk"))
        .values("booking")
        .annotate(ids=_UnitIds("unit_id"))
        .values("ids")
    )
    # A booking's allocations share its interval, and are active exactly while it holds them
    # (confirmed or released), so the bookings overlapping the window are the ones to draw.
    rows = (
        Booking.objects.holding().overlapping(window.start, window.end)
        .annotate(units=Subquery(units))
        .order_by("start", "pk")
        .values_list(
            "pk", "start", "end", "purpose", "whole_server", "user_id",
            "user__username", "user__first_name", "user__last_name", "user__profile__display_name", "units", "status",
        )
    )
    names, bars = {}, {}
    page = booking_page()
    for booking_id, start, end, purpose, whole, user_id, username, first, last, display, unit_ids, status in rows:
        if not unit_ids:
            continue
        who = names.get(user_id)
        if who is None:
            who = names[user_id] = display_name_of(display, first, last, username)
        bar = _bar(
            window, booking_id, start, end, who, purpose, whole, user_id == user.pk, pending=status == Booking.Status.PENDING,
            href=page(booking_id),
        )
        for unit_id in unit_ids.split(","):
            bars.setdefault(int(unit_id), []).append(bar)
    return bars


def booking_page():
    """booking id -> its page's path; reverse() once, not once per bar."""
    path = reverse("booking-detail", args=[987654321])
    return lambda booking_id: path.replace("987654321", str(booking_id))


def _bar(window, booking_id, start, end, who, purpose, whole, mine, pending=False, href=""):
    """A booking's bar: a link to its page whose accessible name says who, why, when (and whole server,
    awaiting approval), what the hover title says too: a keyboard or a screen reader gets the same."""
    starts, ends = window.position(start), window.position(end)
    left, right = max(starts, 0.0), min(ends, 100.0)
    when = format_span(start, end, window.zone)
    title = f"{'Your booking' if mine else who}: {purpose or 'no purpose given'}\n{when}"
    if whole:
        title += "\nwhole server"
    if pending:
        title += "\nawaiting approval"
    text = f"★ {who}" if mine else who
    if purpose:
        text += f" · {purpose}"
    classes = "bar mine" if mine else "bar"
    if starts < 0:
        classes += " cut-start"
    if ends > 100:
        classes += " cut-end"
    if pending:
        classes += " pending"  # hatched: held, not yet approved
        text = f"? {text}"
    # The accessible name starts with the visible text (WCAG 2.5.3), then what the hover title adds.
    details = ["your booking" if mine else "", "no purpose given" if not purpose else "", when, "whole server" if whole else "", "awaiting approval" if pending else ""]
    label = f"{text}: booking #{booking_id}, " + ", ".join(part for part in details if part)
    # Thousands of these per page: the standard library's escape, not Django's lazy-aware wrapper.
    html = (
        f'<a class="{classes}" href="{href}" style="left:{_pct(left)}%;width:{_pct(right - left)}%" title="{escape(title)}"'
        f' aria-label="{escape(label)}">{escape(text)}</a>'
    )
    return Bar(booking_id=booking_id, left=left, width=right - left, who=who, purpose=purpose, title=title, mine=mine, html=html)


# --- pooled capacities: a usage band per server ------------------------------------------------


@dataclass(frozen=True)
class Step:
    """A stretch of the window over which the same amounts of a server's pool are booked."""

    left: float
    width: float
    cpu_cores: int
    memory_gib: int
    text: str  # '48 of 128 cores, 256 of 1024 GiB booked, Mon 23 Nov 14:00–16:00 CET'


@dataclass
class Band:
    """How much of a server's pooled CPU cores and memory is booked across the window, as steps."""

    server: str
    cpu_cores: int | None
    memory_gib: int | None
    steps: list = field(default_factory=list)

    @property
    def capacity(self):
        """'128 cores · 1024 GiB': what the server declares."""
        parts = [f"{self.cpu_cores} cores" if self.cpu_cores is not None else "", f"{self.memory_gib} GiB" if self.memory_gib is not None else ""]
        return " · ".join(part for part in parts if part)

    @property
    def labels(self):
        """(what, total, unit) per declared capacity: the band's label."""
        return [(text, total, unit) for text, total, unit in (("CPU cores", self.cpu_cores, ""), ("memory", self.memory_gib, " GiB")) if total is not None]

    @property
    def lanes(self):
        """One Lane per declared capacity, each step filled to the share booked (steps booking none of it left out)."""
        return [
            Lane(css, [self._use(step, getattr(step, field_), total) for step in self.steps if getattr(step, field_)])
            for field_, total, css in (("cpu_cores", self.cpu_cores, "cores"), ("memory_gib", self.memory_gib, "memory"))
            if total is not None
        ]

    @staticmethod
    def _use(step, amount, total):
        fill = min(amount / total * 100, 100) if total else 100
        return Use(amount=amount, full=amount >= total, left=_pct(step.left), width=_pct(step.width), fill=_pct(fill), text=step.text)


@dataclass(frozen=True)
class Use:
    """A step's share of one capacity, as drawn: percentages for CSS."""

    amount: int
    full: bool
    left: str
    width: str
    fill: str
    text: str


@dataclass(frozen=True)
class Lane:
    css: str  # cores or memory
    uses: list


def _add_bands(window, groups):
    """A Band for each server that declares pooled capacities, from one query for all of them."""
    pooled = {group.server_id: group for group in groups if group.cpu_cores is not None or group.memory_gib is not None}
    if not pooled:
        return
    rows = (
        Booking.objects.holding().overlapping(window.start, window.end).filter(server_id__in=list(pooled))
        .filter(Q(cpu_cores__gt=0) | Q(memory_gib__gt=0) | Q(whole_server=True))
        .values_list("server_id", "start", "end", "whole_server", "cpu_cores", "memory_gib")
    )
    shares = {}
    for server_id, start, end, whole, cores, memory in rows:
        group = pooled[server_id]
        # A whole-server booking takes all of the pool.
        if whole:
            cores, memory = group.cpu_cores or 0, group.memory_gib or 0
        shares.setdefault(server_id, []).append((max(start, window.start), min(end, window.end), cores, memory))
    for server_id, group in pooled.items():
        group.band = Band(server=group.name, cpu_cores=group.cpu_cores, memory_gib=group.memory_gib)
        group.band.steps = _steps(window, group, shares.get(server_id, []))


def _steps(window, group, shares):
    """Sweep the shares (start, end, cores, GiB) into steps of constant load; stretches with none are left out."""
    changes = {}
    for start, end, cores, memory in shares:
        for moment, sign in ((start, 1), (end, -1)):
            cores_then, memory_then = changes.get(moment, (0, 0))
            changes[moment] = (cores_then + sign * cores, memory_then + sign * memory)
    steps, cores, memory = [], 0, 0
    moments = sorted(changes)
    for moment, following in zip(moments, moments[1:]):
        step_cores, step_memory = changes[moment]
        cores, memory = cores + step_cores, memory + step_memory
        if not cores and not memory:
            continue
        if steps and steps[-1][1] == moment and steps[-1][2:] == (cores, memory):
            steps[-1] = (steps[-1][0], following, cores, memory)  # same load on: one step
        else:
            steps.append((moment, following, cores, memory))
    return [_step(window, group, start, end, cores, memory) for start, end, cores, memory in steps]


def _step(window, group, start, end, cores, memory):
    parts = []
    if group.cpu_cores is not None:
        parts.append(f"{cores} of {group.cpu_cores} cores")
    if group.memory_gib is not None:
        parts.append(f"{memory} of {group.memory_gib} GiB")
    left, right = window.position(start), window.position(end)
    text = f"{', '.join(parts)} booked, {format_span(start, end, window.zone)}"
    return Step(left=left, width=right - left, cpu_cores=cores, memory_gib=memory, text=text)


def _ticks(window, now):
    """Hour ticks for a day; day ticks (and 6-hour minor ticks) for a week; in local time."""
    today = timezone.localdate(now, window.zone)
    if window.view == "day":
        hours = round((window.end - window.start) / timedelta(hours=1))
        # Step in real hours from local midnight: a 23- or 25-hour day gets 23 or 25 ticks.
        moments = [window.start + timedelta(hours=n) for n in range(hours)] + [window.end]
        labels = [f"{timezone.localtime(moment, window.zone):%H}" for moment in moments[:-1]]
        return _spaced(window, moments, labels, major=True), []
    days = window.dates
    moments = [local_midnight(day, window.zone) for day in days] + [window.end]
    ticks = [
        Tick(left=_pct(window.position(a)), width=_pct(window.position(b) - window.position(a)), label=f"{day:%a %d %b}", today=day == today)
        for day, a, b in zip(days, moments, moments[1:])
    ]
    minor = [
        Tick(left=_pct(window.position(local_at(day, hour, window.zone))), width="0", label=f"{hour:02d}", major=False)
        for day in days
        for hour in (6, 12, 18)
    ]
    return ticks, minor


def _spaced(window, moments, labels, major):
    return [
        Tick(left=_pct(window.position(a)), width=_pct(window.position(b) - window.position(a)), label=label, major=major)
        for label, a, b in zip(labels, moments, moments[1:])
    ]


# --- rooms ---------------------------------------------------------------------------------


@dataclass
class RoomStatus:
    room: Room
    current: object = None  # the Allocation holding the room now
    next: object = None  # the next one within the lookahead


def room_board(now=None):
    """Every active room with the booking holding it now and the next one, from two queries."""
    now = now or timezone.now()
    rooms = {room.unit.pk: RoomStatus(room=room) for room in Room.objects.filter(active=True).select_related("unit")}
    # By unit id, so the database can use the index of active allocations by unit and end.
    allocations = (
        Allocation.objects.active().overlapping(now, now + LOOKAHEAD).filter(unit_id__in=list(rooms))
        .select_related("booking__user__profile")
        .order_by("start")
    )
    for allocation in allocations:
        status = rooms[allocation.unit_id]
        if allocation.start <= now:
            status.current = status.current or allocation
        else:
            status.next = status.next or allocation
    return list(rooms.values())


@dataclass(frozen=True)
class Block:
    """Part of a booking within one day of the room week; top and height in percent of the visible hours."""

    top: str
    height: str
    time: str
    who: str
    purpose: str
    title: str
    mine: bool
    cut_start: bool
    cut_end: bool
    url: str = ""  # the booking's page

    @property
    def label(self):
        """The link's accessible name: what the hover title says."""
        return self.title.replace("\n", ", ")


@dataclass(frozen=True)
class Slot:
    top: str
    height: str
    label: str
    url: str  # empty for an hour that has begun or is partly booked


@dataclass
class RoomDay:
    day: date
    today: bool
    blocks: list
    slots: list
    book_url: str
    now_top: str | None = None


@dataclass
class RoomWeek:
    room: Room
    window: Window
    first_hour: int
    last_hour: int
    hours: list  # (top percent, 'HH:00')
    days: list

    @property
    def hour_count(self):
        return self.last_hour - self.first_hour


def room_week(room, user, *, day=None, zone=None, now=None):
    """A room's bookings in the local week holding `day`, split into days and placed by time of day.

    Load the room with select_related("unit"): its allocations are looked up by unit id.
    """
    zone = zone or timezone.get_current_timezone()
    now = now or timezone.now()
    window = Window.of("week", day or timezone.localdate(now, zone), zone)
    allocations = (
        Allocation.objects.active().overlapping(window.start, window.end).filter(unit_id=room.unit.pk)
        .select_related("booking__user__profile")
        .order_by("start")
    )
    segments = _segments_by_day(window, allocations)
    everything = [segment for day_segments in segments.values() for segment in day_segments]
    first_hour = min([ROOM_DAY_HOURS[0]] + [segment.first // 60 for segment in everything])
    last_hour = max([ROOM_DAY_HOURS[1]] + [-(-segment.last // 60) for segment in everything])
    scale = _DayScale(first_hour, last_hour)
    days = [_room_day(room, user, date_, segments[date_], scale, zone, now) for date_ in window.dates]
    hours = [(scale.top(hour * 60), f"{hour:02d}:00") for hour in range(first_hour, last_hour + 1)]
    return RoomWeek(room=room, window=window, first_hour=first_hour, last_hour=last_hour, hours=hours, days=days)


@dataclass(frozen=True)
class _Segment:
    """The part of an allocation within one local day, in minutes from midnight (wall clock)."""

    first: int
    last: int
    allocation: Allocation
    cut_start: bool
    cut_end: bool


@dataclass(frozen=True)
class _DayScale:
    first_hour: int
    last_hour: int

    def top(self, minute):
        return _pct((minute - self.first_hour * 60) / ((self.last_hour - self.first_hour) * 60) * 100)

    def height(self, minutes):
        return _pct(minutes / ((self.last_hour - self.first_hour) * 60) * 100)


def _segments_by_day(window, allocations):
    bounds = [(date_, local_midnight(date_, window.zone), local_midnight(date_ + timedelta(days=1), window.zone)) for date_ in window.dates]
    segments = {date_: [] for date_ in window.dates}
    for allocation in allocations:
        for date_, day_start, day_end in bounds:
            start, end = max(allocation.start, day_start), min(allocation.end, day_end)
            if start < end:
                first = _minute_of_day(start, window.zone)
                last = 24 * 60 if end == day_end else _minute_of_day(end, window.zone)
                segments[date_].append(_Segment(first, max(last, first + 1), allocation, start > allocation.start, end < allocation.end))
    return segments


def _room_day(room, user, date_, segments, scale, zone, now):
    blocks, page = [], booking_page()
    for segment in segments:
        booking = segment.allocation.booking
        who = member_name(booking.user)
        mine = booking.user_id == user.pk
        when = format_span(segment.allocation.start, segment.allocation.end, zone)
        blocks.append(Block(
            top=scale.top(segment.first), height=scale.height(segment.last - segment.first),
            time=f"{segment.first // 60:02d}:{segment.first % 60:02d}–{segment.last // 60:02d}:{segment.last % 60:02d}",
            who=f"★ {who}" if mine else who, purpose=booking.purpose,
            title=f"{'Your booking' if mine else who}: {booking.purpose or 'no purpose given'}\n{when}",
            mine=mine, cut_start=segment.cut_start, cut_end=segment.cut_end, url=page(booking.pk),
        ))
    slots = []
    for hour in range(scale.first_hour, scale.last_hour):
        start = local_at(date_, hour, zone)
        taken = any(s.first < (hour + 1) * 60 and s.last > hour * 60 for s in segments)
        url = book_url({"room": room.name}, start, start + timedelta(hours=1), zone) if start >= now and not taken else ""
        slots.append(Slot(top=scale.top(hour * 60), height=scale.height(60), label=f"{hour:02d}:00", url=url))
    today = timezone.localdate(now, zone)
    day_start = max(local_at(date_, 9, zone), next_half_hour(now, zone))
    day_url = book_url({"room": room.name}, day_start, day_start + timedelta(hours=1), zone) if date_ >= today else ""
    entry = RoomDay(day=date_, today=date_ == today, blocks=blocks, slots=slots, book_url=day_url)
    minute = _minute_of_day(now, zone)
    if entry.today and scale.first_hour * 60 <= minute < scale.last_hour * 60:
        entry.now_top = scale.top(minute)
    return entry


def _minute_of_day(moment, zone):
    local = timezone.localtime(moment, zone)
    return local.hour * 60 + local.minute
