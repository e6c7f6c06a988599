"""Fair use: which limits hold for a member, and whether a booking keeps within them.

Limits belong to groups (a group inherits its parent's) or to one member (an override), and
hold everywhere or on one server or room. For each kind of limit the most specific one counts:
the member's own over their group's over its parents', and at each of those a rule for the
booked server or room over a general one. Staff are exempt unless a rule says otherwise.

The services call check() inside the booking's transaction after locking the member (see
services._lock), so two requests that each fit alone but not together cannot both pass.
"""
import time
from bisect import bisect_right
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from .capacity import peak_load
from .errors import BookingError, format_span
from .models import Allocation, Booking, Limit, MemberGroup, Profile, Unit
from .parsing import format_duration, parse_duration

WEEK = timedelta(days=7)
UNKNOWN = object()  # a member's group not read yet (services._lock reads it with the locks on PostgreSQL)


class LimitExceeded(BookingError):
    """The booking would break a fair-use limit; the message names the limit and where it comes from."""

    code = "limit_exceeded"

    def __init__(self, message, *, rule, field=None):
        super().__init__(message, field=field)
        self.rule = rule


class AccessDenied(LimitExceeded):
    """The member's group may not book this server or room."""

    code = "not_allowed_here"


@dataclass(frozen=True)
class Rule:
    """A limit that holds for a member, and in whose name: 'Students', 'You (personal limit)'."""

    limit: Limit
    source: str

    @property
    def kind(self):
        return self.limit.kind

    def says(self):
        """'Students: at most 4 GPUs at once' for the booking form's list."""
        return f"{self.source}: {self.limit.describe()}"


# Limits and groups change seldom and are read by every booking: each process keeps them for up to
# RULES_CACHE_SECONDS, and forgets them at once when it saves or deletes one (signals below). A
# change made in the admin reaches the other processes within that time.
RULES_CACHE_SECONDS = 10
_cache = {"groups": None, "limits": None, "loaded_at": 0.0}


def _table():
    """(groups by id, every limit with its group, server and room), from this process's cache."""
    if _cache["limits"] is None or time.monotonic() - _cache["loaded_at"] > RULES_CACHE_SECONDS:
        groups = {group.pk: group for group in MemberGroup.objects.all()}
        limits = list(Limit.objects.select_related("server", "room"))
        for limit in limits:
            if limit.group_id:
                limit.group = groups[limit.group_id]
        _cache.update(groups=groups, limits=limits, loaded_at=time.monotonic())
    return _cache["groups"], _cache["limits"]


def forget(**kwargs):
    """Drop the cached limits and groups (a signal receiver, and for tests)."""
    _cache["limits"] = None


for _model in (Limit, MemberGroup):
    post_save.connect(forget, sender=_model, dispatch_uid=f"fairuse-forget-save-{_model.__name__}")
    post_delete.connect(forget, sender=_model, dispatch_uid=f"fairuse-forget-delete-{_model.__name__}")


def rules_for(user, *, server=None, room=None, group_id=UNKNOWN):
    """{kind: Rule} of the limits that hold for `user` booking `server` or `room` (None: general rules only).

    `group_id` is the member's primary group where the caller has read it already.
    """
    groups, limits = _table()
    if not limits:
        return {}
    if group_id is UNKNOWN:
        group_id = _group_id_of(user)
    return _rules(user, _lineage(groups, group_id), limits, server.pk if server else None, room.pk if room else None)


def _group_id_of(user):
    return Profile.objects.filter(user=user).values_list("group_id", flat=True).first()


def _rules(user, lineage, limits, server_id, room_id):
    """rules_for, once the member's groups are known: pure, no queries."""
    rank_of_group = {g.pk: depth for depth, g in enumerate(lineage, start=1)}
    best = {}
    for limit in limits:
        if limit.user_id is not None and limit.user_id != user.pk:
            continue
        if limit.group_id is not None and limit.group_id not in rank_of_group:
            continue
        if (limit.server_id is not None and limit.server_id != server_id) or (limit.room_id is not None and limit.room_id != room_id):
            continue
        if user.is_staff and not limit.applies_to_staff:
            continue
        owner_rank = 0 if limit.user_id else rank_of_group[limit.group_id]
        rank = (owner_rank, 0 if (limit.server_id or limit.room_id) else 1, limit.pk)
        if limit.kind not in best or rank < best[limit.kind][0]:
            best[limit.kind] = (rank, limit)
    primary = lineage[0] if lineage else None
    return {kind: Rule(limit, _source(limit, primary)) for kind, (_, limit) in best.items()}


def _lineage(groups, group_id):
    """The group and its ancestors, stopping at a cycle."""
    out, current = [], groups.get(group_id)
    while current is not None and current not in out:
        out.append(current)
        current = groups.get(current.parent_id)
    return out


def _source(limit, primary):
    if limit.user_id:
        return "You (personal limit)"
    if primary is not None and limit.group_id != primary.pk:
        return f"{limit.group.name} (which {primary.name} is part of)"
    return limit.group.name


# --- checking a booking -------------------------------------------------------------------


def check(user, *, server=None, room=None, gpus=0, start, end, now, exclude=None, group_id=UNKNOWN):
    """Raise LimitExceeded if `user` booking `gpus` GPUs of `server` (or the server whole, or `room`) for [start, end) breaks a limit.

    `exclude` is the booking being changed: its own hold does not count against its new times.
    """
    rules = rules_for(user, server=server, room=room, group_id=group_id)
    if not rules:
        return
    access = rules.get(Limit.Kind.ACCESS)
    if access is not None and not access.limit.allowed:
        what = f"server {server.name}" if server is not None else f"room {room.name}"
        raise AccessDenied(f"{access.source} may not book {what}; ask staff if you need it.", rule=access, field="server" if server else "room")
    _check_length(rules.get(Limit.Kind.MAX_LENGTH), start, end)
    _check_ahead(rules.get(Limit.Kind.MAX_AHEAD), start, now)
    at_once, weekly = rules.get(Limit.Kind.MAX_GPUS), rules.get(Limit.Kind.GPU_HOURS_WEEK)
    if gpus and (at_once or weekly):
        # One query for both: the member's GPU holds within a week either side, with their server.
        holds = _holds(user, start - WEEK if weekly else start, end + WEEK if weekly else end, exclude)
        _check_at_once(at_once, holds, gpus, start, end)
        _check_weekly(weekly, holds, gpus, start, end)


def gpu_count(target):
    """How many GPUs a services.Target holds (a whole server: all of its GPUs)."""
    if target.server is None:
        return 0
    if target.devices:
        return len(target.devices)
    return sum(1 for unit in target.units if unit.kind == Unit.Kind.GPU)


def _check_length(rule, start, end):
    if rule is None:
        return
    longest = parse_duration(rule.limit.duration)
    if end - start > longest:
        raise LimitExceeded(
            f"{rule.source} may book at most {format_duration(longest)} at a time; this booking would last {format_duration(end - start)}.",
            rule=rule, field="end",
        )


def _check_ahead(rule, start, now):
    if rule is None:
        return
    ahead = parse_duration(rule.limit.duration)
    if start > now + ahead:
        raise LimitExceeded(
            f"{rule.source} may book at most {format_duration(ahead)} ahead; this booking starts in {format_duration(start - now)}.",
            rule=rule, field="start",
        )


def _holds(user, since, until, exclude):
    """The member's GPU holds overlapping [since, until): (server id, start, end) per GPU.

    Read from the member's server bookings in the window (index user, end), each with a count of
    its allocations (index booking), less the server's own unit for a whole-server booking: a
    plan that depends neither on how many allocations everyone holds in the window nor on
    whether the planner's statistics have seen this week's bookings yet. Written as SQL: this
    runs in every booking's transaction, and building it with the ORM cost more than running it.
    """
    q = transaction.get_connection().ops.quote_name
    statuses = list(Booking.HOLDING)
    rows = Booking.objects.raw(
        f"SELECT b.id, b.server_id, b.start, b.{q('end')}, b.whole_server,"
        f" (SELECT COUNT(*) FROM {Allocation._meta.db_table} a WHERE a.booking_id = b.id AND a.active) AS units"
        f" FROM {Booking._meta.db_table} b WHERE b.user_id = %s AND b.status IN ({', '.join(['%s'] * len(statuses))})"
        f" AND b.server_id IS NOT NULL AND b.start < %s AND b.{q('end')} > %s AND b.id <> %s",
        [user.pk, *statuses, until, since, exclude.pk if exclude is not None else 0],
    )
    return [(b.server_id, b.start, b.end) for b in rows for _ in range(b.units - b.whole_server)]


def _on(rule, holds):
    """The holds a rule counts: on its server, or everywhere."""
    server_id = rule.limit.server_id
    return [(a, b) for held_on, a, b in holds if server_id is None or held_on == server_id]


def _check_at_once(rule, holds, asked, start, end):
    if rule is None:
        return
    most = rule.limit.number
    peak, peak_from, peak_to = peak_load([(a, b, 1) for a, b in _on(rule, holds)], start, end)
    if peak + asked > most:
        holding = f"you hold {peak} {format_span(peak_from, peak_to)} and asked for {asked}" if peak else f"you asked for {asked}"
        raise LimitExceeded(
            f"{rule.source} may hold at most {most} GPU{'s' if most != 1 else ''} at once{_where(rule)}; {holding}.",
            rule=rule, field="devices",
        )


def _check_weekly(rule, holds, asked, start, end):
    """GPU-hours in any 7-day window that overlaps the booking, with the booking, stay within the limit."""
    if rule is None:
        return
    allowed_hours = rule.limit.number
    intervals = _on(rule, holds) + [(start, end)] * asked
    worst, worst_at = busiest_window(intervals, WEEK, start - WEEK, end)
    if worst > allowed_hours + 1e-9:
        booked = (end - start).total_seconds() / 3600 * asked
        raise LimitExceeded(
            f"{rule.source} may use at most {allowed_hours} GPU-hours in any 7 days{_where(rule)}; with this booking "
            f"({booked:g} GPU-hours) you would have {worst:g} in the 7 days from {worst_at:%a %d %b %H:%M}.",
            rule=rule, field="devices",
        )


def busiest_window(intervals, width, earliest, latest):
    """The most hours the intervals cover within one window [t, t + width), t in [earliest, latest]: (hours, t).

    Covered time up to x, G(x), is piecewise linear (its slope is how many intervals are open),
    so a window's hours G(t + width) - G(t) peak where t or t + width meets an interval's start
    or end. G is built once from the sorted ends and read by bisection: O(n log n), not O(n^2).
    """
    steps = sorted([(a, 1) for a, b in intervals if a < b] + [(b, -1) for a, b in intervals if a < b])
    if not steps:
        return 0.0, earliest
    times, covered, slopes = [], [], []
    total, slope, previous = 0.0, 0, steps[0][0]
    for moment, step in steps:
        total += slope * (moment - previous).total_seconds()
        slope += step
        previous = moment
        if times and times[-1] == moment:
            covered[-1], slopes[-1] = total, slope
        else:
            times.append(moment)
            covered.append(total)
            slopes.append(slope)

    def covered_until(x):
        i = bisect_right(times, x) - 1
        if i < 0:
            return 0.0
        return covered[i] + slopes[i] * (x - times[i]).total_seconds()

    candidates = {earliest, latest}
    for moment in times:
        candidates.update((moment, moment - width))
    worst, worst_at = 0.0, earliest
    for t in sorted(c for c in candidates if earliest <= c <= latest):
        hours = (covered_until(t + width) - covered_until(t)) / 3600
        if hours > worst + 1e-9:
            worst, worst_at = hours, t
    return worst, worst_at


def _where(rule):
    return f" on {rule.limit.place}" if rule.limit.place else ""


def effective_limits(user):
    """What the booking form shows: the general rules, and those for particular servers and rooms (one query)."""
    groups, limits = _table()
    if not limits:
        return []
    lineage = _lineage(groups, _group_id_of(user))
    general = _rules(user, lineage, limits, None, None)
    specific, seen = [], set()
    for server_id, room_id in sorted({(l.server_id, l.room_id) for l in limits if l.server_id or l.room_id}, key=str):
        for rule in _rules(user, lineage, limits, server_id, room_id).values():
            if (rule.limit.server_id or rule.limit.room_id) and rule.limit.pk not in seen:
                seen.add(rule.limit.pk)
                specific.append(rule)
    return list(general.values()) + specific
