"""Fair use: which limits hold for a member, and whether a booking keeps within them.

Limits belong to groups (a group inherits its parent's) or to one member (an override), and
hold everywhere or on one server or room. For each kind of limit the most specific one counts:
the member's own over their group's over its parents', and at each of those a rule for the
booked server or room over a general one. Staff are exempt unless a rule says otherwise.

The services call check() inside the booking's transaction after locking the member (see
locking.lock), so two requests that each fit alone but not together cannot both pass.
"""
from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db.models.signals import post_delete, post_save

from .. import queries
from ..errors import AccessDenied, LimitExceeded
from ..models import Limit, MemberGroup, Profile, Unit, member_name
from ..parsing import PLACE, describe_target, format_duration, format_span, parse_duration
from .capacity import peak_load

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from ..models import Booking, Room, Server
    from .targets import Target

Hold = tuple[int, float, float, int]  # (server id, start, end, GPUs), times in epoch seconds: queries.member_holds

UNKNOWN = object()  # a member's group not read yet: rules_for reads it
WEEK = timedelta(days=7)
WEEK_SECONDS = WEEK.total_seconds()


@dataclass(frozen=True)
class Rule:
    """A limit that holds for a member, and in whose name: 'Students', 'You (personal limit)'."""

    limit: Limit
    source: str

    @property
    def kind(self) -> str:
        return self.limit.kind

    def says(self) -> str:
        """'Students: at most 4 GPUs at once' for the booking form's list."""
        return f"{self.source}: {self.limit.describe()}"


# Limits and groups change seldom and are read by every booking: each process keeps them for up to
# RULES_CACHE_SECONDS, and forgets them at once when it saves or deletes one (signals below). A
# change made in the admin reaches the other processes within that time.
RULES_CACHE_SECONDS = 10
_cache: dict[str, Any] = {"groups": None, "limits": None, "loaded_at": 0.0}


def _table() -> tuple[dict[int, MemberGroup], list[Limit]]:
    """(groups by id, every limit with its group, server and room), from this process's cache."""
    if _cache["limits"] is None or time.monotonic() - _cache["loaded_at"] > RULES_CACHE_SECONDS:
        groups = {group.pk: group for group in MemberGroup.objects.all()}
        limits = list(Limit.objects.select_related("server", "room"))
        for limit in limits:
            if limit.group_id:
                limit.group = groups[limit.group_id]
        _cache.update(groups=groups, limits=limits, loaded_at=time.monotonic())
    return _cache["groups"], _cache["limits"]


def forget(**kwargs: object) -> None:
    """Drop the cached limits and groups (a signal receiver, and for tests)."""
    _cache["limits"] = None


for _model in (Limit, MemberGroup):
    post_save.connect(forget, sender=_model, dispatch_uid=f"fairuse-forget-save-{_model.__name__}")
    post_delete.connect(forget, sender=_model, dispatch_uid=f"fairuse-forget-delete-{_model.__name__}")


def rules_for(
    user: User, *, server: Server | None = None, room: Room | None = None, group_id: int | None | object = UNKNOWN,
) -> dict[str, Rule]:
    """{kind: Rule} of the limits that hold for `user` booking `server` or `room` (None: general rules only).

    `group_id` is the member's primary group where the caller has read it already.
    """
    groups, limits = _table()
    if not limits:
        return {}
    if group_id is UNKNOWN:
        group_id = _group_id_of(user)
    assert group_id is None or isinstance(group_id, int), "a group's id or None once UNKNOWN is read"
    return _rules(user, _lineage(groups, group_id), limits, server.pk if server else None, room.pk if room else None)


def _group_id_of(user: User) -> int | None:
    return Profile.objects.filter(user=user).values_list("group_id", flat=True).first()


def group_for_limits(user: User) -> int | None | object:
    """The member's primary group id for check(group_id=...) where any limit exists, else UNKNOWN (nothing read).

    Writers read it before taking their locks: a group is not booking state, and every query held
    inside the locks makes racing writers wait longer (bench/booking.py's concurrent figure).
    """
    _groups, limits = _table()
    return _group_id_of(user) if limits else UNKNOWN


def _rules(user: User, lineage: list[MemberGroup], limits: list[Limit], server_id: int | None, room_id: int | None) -> dict[str, Rule]:
    """rules_for, once the member's groups are known: pure, no queries."""
    rank_of_group = {g.pk: depth for depth, g in enumerate(lineage, start=1)}
    best: dict[str, tuple[tuple[int, int, int], Limit]] = {}
    for limit in limits:
        if limit.user_id is not None and limit.user_id != user.pk:
            continue
        if limit.group_id is not None and limit.group_id not in rank_of_group:
            continue
        if (limit.server_id is not None and limit.server_id != server_id) or (limit.room_id is not None and limit.room_id != room_id):
            continue
        if user.is_staff and not limit.applies_to_staff:
            continue
        owner_rank = 0 if limit.user_id else rank_of_group[limit.group_id]  # type: ignore[index]  # not a member's: a group's
        rank = (owner_rank, 0 if (limit.server_id or limit.room_id) else 1, limit.pk)
        if limit.kind not in best or rank < best[limit.kind][0]:
            best[limit.kind] = (rank, limit)
    primary = lineage[0] if lineage else None
    return {kind: Rule(limit, _source(limit, primary)) for kind, (_, limit) in best.items()}


def _lineage(groups: dict[int, MemberGroup], group_id: int | None) -> list[MemberGroup]:
    """The group and its ancestors, stopping at a cycle."""
    out, current = [], groups.get(group_id)  # type: ignore[arg-type]  # None (no group) finds none
    while current is not None and current not in out:
        out.append(current)
        current = groups.get(current.parent_id)  # type: ignore[arg-type]  # None (no parent) finds none
    return out


def _source(limit: Limit, primary: MemberGroup | None) -> str:
    if limit.user_id:
        return "You (personal limit)"
    assert limit.group is not None, "a limit is a member's or a group's (_table gave it its group)"
    if primary is not None and limit.group_id != primary.pk:
        return f"{limit.group.name} (which {primary.name} is part of)"
    return limit.group.name


# --- checking a booking -------------------------------------------------------------------


def check(
    user: User, *, server: Server | None = None, room: Room | None = None, gpus: int = 0, start: datetime, end: datetime, now: datetime,
    exclude: Booking | None = None, group_id: int | None | object = UNKNOWN, by: User | None = None,
) -> None:
    """Raise LimitExceeded if `user` booking `gpus` GPUs of `server` (or the server whole, or `room`) for [start, end) breaks a limit.

    `exclude` is the booking being changed: its own hold does not count against its new times.
    `by` is who acts (None: the member themself); staff acting for a member read the member's name, not "you".
    """
    rules = rules_for(user, server=server, room=room, group_id=group_id)
    if not rules:
        return
    name = None if by is None or by.pk == user.pk else member_name(user)
    if name is not None:
        rules = {kind: replace(rule, source=f"{name} (personal limit)") if rule.limit.user_id else rule for kind, rule in rules.items()}
    _check_access(rules, server, room, ask="." if name else "; ask staff if you need it.")
    _check_length(rules.get(Limit.Kind.MAX_LENGTH), start, end)
    _check_ahead(rules.get(Limit.Kind.MAX_AHEAD), start, now)
    at_once, weekly = rules.get(Limit.Kind.MAX_GPUS), rules.get(Limit.Kind.GPU_HOURS_WEEK)
    if gpus and (at_once or weekly):
        # One query for both: the member's GPU holds within a week either side, with their server.
        # The arithmetic runs on seconds since the epoch (exact to the microsecond: see queries.member_holds).
        a, b = start.timestamp(), end.timestamp()
        holds = _holds(user, a - WEEK_SECONDS if weekly else a, b + WEEK_SECONDS if weekly else b, exclude)
        _check_at_once(at_once, holds, gpus, a, b, name)
        _check_weekly(weekly, holds, gpus, a, b, name)


def check_wait(user: User, *, server: Server | None = None, room: Room | None = None, gpus: int = 0, length: timedelta) -> None:
    """Raise LimitExceeded if a wait for `gpus` GPUs of `server` (or for `room`) for `length` could never be claimed.

    The limits that hold whatever is free and whatever the member holds: may they book there,
    how long may one booking last, how many GPUs at once, how many GPU-hours in 7 days. What
    depends on their other bookings is checked when they claim an offer.
    """
    rules = rules_for(user, server=server, room=room)
    if not rules:
        return
    _check_access(rules, server, room, ask=", so waiting for it would not help; ask staff if you need it.")
    longest = rules.get(Limit.Kind.MAX_LENGTH)
    most_length = parse_duration(longest.limit.duration) if longest is not None else None
    if most_length is not None and length > most_length:
        assert longest is not None, "most_length is its duration"
        raise LimitExceeded(
            f"{longest.source} may book at most {format_duration(most_length)} at a time; "
            f"ask to wait for that or less (you asked for {format_duration(length)}).",
            rule=longest, field="length",
        )
    at_once = rules.get(Limit.Kind.MAX_GPUS)
    if gpus and at_once is not None and gpus > at_once.limit.number:  # type: ignore[operator]  # MAX_GPUS has a number (Limit.clean)
        most = at_once.limit.number
        raise LimitExceeded(
            f"{at_once.source} may hold at most {most} GPU{'s' if most != 1 else ''} at once{_where(at_once)}; "
            f"ask to wait for {most} or fewer (you asked for {gpus}).",
            rule=at_once, field="gpus",
        )
    weekly = rules.get(Limit.Kind.GPU_HOURS_WEEK)
    hours = gpus * length.total_seconds() / 3600
    if gpus and weekly is not None and hours > weekly.limit.number + 1e-6:  # type: ignore[operator]  # it has a number (Limit.clean)
        raise LimitExceeded(
            f"{weekly.source} may use at most {weekly.limit.number} GPU-hours in any 7 days{_where(weekly)}; "
            f"{gpus} GPU{'s' if gpus != 1 else ''} for {format_duration(length)} would be {hours:g}.",
            rule=weekly, field="length",
        )


def _check_access(rules: dict[str, Rule], server: Server | None, room: Room | None, ask: str) -> None:
    access = rules.get(Limit.Kind.ACCESS)
    if access is not None and not access.limit.allowed:
        what = (
            describe_target(server.name, style=PLACE) if server is not None
            else describe_target(room=room.name)  # type: ignore[union-attr]  # no server: a room
        )
        raise AccessDenied(f"{access.source} may not book {what}{ask}", rule=access, field="server" if server else "room")


def gpu_count(target: Target) -> int:
    """How many GPUs a services.Target holds (a whole server: all of its GPUs)."""
    if target.server is None:
        return 0
    if target.devices:
        return len(target.devices)
    return sum(1 for unit in target.units if unit.kind == Unit.Kind.GPU)


def _check_length(rule: Rule | None, start: datetime, end: datetime) -> None:
    if rule is None:
        return
    longest = parse_duration(rule.limit.duration)
    if end - start > longest:
        raise LimitExceeded(
            f"{rule.source} may book at most {format_duration(longest)} at a time; this booking would last {format_duration(end - start)}.",
            rule=rule, field="end",
        )


def _check_ahead(rule: Rule | None, start: datetime, now: datetime) -> None:
    if rule is None:
        return
    ahead = parse_duration(rule.limit.duration)
    if start > now + ahead:
        raise LimitExceeded(
            f"{rule.source} may book at most {format_duration(ahead)} ahead; this booking starts in {format_duration(start - now)}.",
            rule=rule, field="start",
        )


def _holds(user: User, since: float, until: float, exclude: Booking | None) -> list[Hold]:
    """The member's GPU holds overlapping [since, until), in epoch seconds: (server id, start, end, GPUs) per booking."""
    return queries.member_holds(user, since, until, exclude)


def _from_seconds(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _on(rule: Rule, holds: list[Hold]) -> list[tuple[float, float, int]]:
    """The holds a rule counts, (start, end, GPUs): on its server, or everywhere."""
    server_id = rule.limit.server_id
    return [(a, b, gpus) for held_on, a, b, gpus in holds if server_id is None or held_on == server_id]


def _check_at_once(rule: Rule | None, holds: list[Hold], asked: int, start: float, end: float, name: str | None = None) -> None:
    """At most the rule's GPUs at once; the refusal says "you" to the member and their `name` to staff acting for them."""
    if rule is None:
        return
    most = rule.limit.number
    assert most is not None, "a MAX_GPUS limit has its number (Limit.clean)"
    peak, peak_from, peak_to = peak_load(_on(rule, holds), start, end)
    if peak + asked > most:
        span = format_span(_from_seconds(peak_from), _from_seconds(peak_to), sentence=True)
        if name is None:
            holding = f"you hold {peak} {span} and asked for {asked}" if peak else f"you asked for {asked}"
        else:
            holding = f"{name} holds {peak} {span} and this booking asks for {asked}" if peak else f"this booking asks for {asked}"
        raise LimitExceeded(
            f"{rule.source} may hold at most {most} GPU{'s' if most != 1 else ''} at once{_where(rule)}; {holding}.",
            rule=rule, field="devices",
        )


def _check_weekly(rule: Rule | None, holds: list[Hold], asked: int, start: float, end: float, name: str | None = None) -> None:
    """GPU-hours in any 7-day window that overlaps the booking, with the booking, stay within the limit."""
    if rule is None:
        return
    allowed_hours = rule.limit.number
    assert allowed_hours is not None, "a GPU_HOURS_WEEK limit has its number (Limit.clean)"
    intervals = _on(rule, holds) + [(start, end, asked)]
    worst, worst_at = busiest_window(intervals, WEEK_SECONDS, start - WEEK_SECONDS, end)
    worst /= 3600
    if worst > allowed_hours + 1e-6:  # an hour to a few milliseconds: the sum of float seconds
        booked = (end - start) / 3600 * asked
        raise LimitExceeded(
            f"{rule.source} may use at most {allowed_hours} GPU-hours in any 7 days{_where(rule)}; with this booking "
            f"({booked:g} GPU-hours) {name or 'you'} would have {worst:g} in the 7 days from {_from_seconds(worst_at):%a %d %b %H:%M}.",
            rule=rule, field="devices",
        )


def busiest_window(intervals: Iterable[tuple[float, float, int]], width: float, earliest: float, latest: float) -> tuple[float, float]:
    """The most a window [t, t + width), t in [earliest, latest], covers of weighted intervals: (amount, t).

    All in numbers (seconds): intervals are (start, end, weight), the amount is weight x seconds.
    Covered amount up to x, G(x), is piecewise linear (its slope is the weight of the intervals
    open), so a window's amount G(t + width) - G(t) peaks where t or t + width meets an
    interval's start or end. G is built once from the sorted ends and read by bisection:
    O(n log n), not O(n^2).
    """
    deltas: dict[float, int] = {}
    for a, b, weight in intervals:
        if a < b and weight:
            deltas[a] = deltas.get(a, 0) + weight
            deltas[b] = deltas.get(b, 0) - weight
    if not deltas:
        return 0.0, earliest
    times = sorted(deltas)
    covered, slopes = [], []
    total, slope, previous = 0.0, 0, times[0]
    for moment in times:
        total += slope * (moment - previous)
        slope += deltas[moment]
        previous = moment
        covered.append(total)
        slopes.append(slope)

    def covered_until(x: float) -> float:
        i = bisect_right(times, x) - 1
        if i < 0:
            return 0.0
        return covered[i] + slopes[i] * (x - times[i])

    candidates = {earliest, latest}
    for moment in times:
        candidates.add(moment)
        candidates.add(moment - width)
    worst, worst_at = 0.0, earliest
    for t in sorted(c for c in candidates if earliest <= c <= latest):
        amount = covered_until(t + width) - covered_until(t)
        if amount > worst + 1e-6:
            worst, worst_at = amount, t
    return worst, worst_at


def _where(rule: Rule) -> str:
    return f" on {rule.limit.place}" if rule.limit.place else ""


def effective_limits(user: User) -> list[Rule]:
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
