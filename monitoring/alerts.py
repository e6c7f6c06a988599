"""What telemetry reveals, as alerts: idle bookings, unbooked use and stale hosts.

detect() is run by beat every minute. Each cause has a key; an alert stays open while its
cause lasts (later runs only touch last_seen_at) and is resolved when the cause is gone,
so running detect twice, or from two workers, opens nothing twice.
"""
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min
from django.utils import timezone

from reservations.errors import BookingError
from reservations.models import Allocation, Booking
from reservations.parsing import PROSE, describe_target, format_device_set, format_duration, parse_duration
from reservations.services import release_booking

from .live import HostState, Match, live_hosts, stale_after
from .models import Alert, GpuSample, HostStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finding:
    """One cause seen in this run, before it becomes (or refreshes) an open alert."""

    kind: str
    key: str
    server_id: int
    message: str
    device_id: int | None = None
    booking_id: int | None = None
    user_id: int | None = None
    unix_username: str = ""


def detect(now=None):
    """One detector pass; returns {kind: number of open alerts of that kind after the pass}."""
    now = now or timezone.now()
    findings = [*stale_hosts(now), *unbooked_use(now), *idle_bookings(now)]
    _sync(findings, now)
    released = _release_idle(now)
    counts = dict(Alert.objects.filter(resolved_at__isnull=True).values_list("kind").annotate(n=Count("id")).order_by())
    counts["released"] = released
    return counts


def stale_hosts(now):
    """Monitored hosts that reported once but not within TELEMETRY_STALE_INTERVALS intervals."""
    cutoff = now - stale_after()
    rows = HostStatus.objects.filter(server__active=True, server__monitored=True, last_seen_at__lt=cutoff).select_related("server")
    for status in rows:
        silent = format_duration(now - status.last_seen_at) if now - status.last_seen_at >= timedelta(minutes=1) else "under a minute"
        yield Finding(
            Alert.Kind.HOST_STALE, f"stale:{status.server_id}", status.server_id,
            f"{status.server.name} has sent no GPU reading for {silent} (last at {status.last_seen_at:%Y-%m-%d %H:%M} UTC).",
        )


def unbooked_use(now):
    """Processes on GPUs whose owner holds no booking on that GPU now, from each fresh host's latest reading."""
    for host in live_hosts(now):
        if host.state != HostState.OK:
            continue
        for gpu in host.gpus:
            if gpu.match != Match.UNBOOKED:
                continue
            where = describe_target(host.name, [gpu.index], style=PROSE)
            booked = f" (booked by {gpu.holding.name})" if gpu.holding else " (not booked)"
            if gpu.processes is None:
                yield Finding(
                    Alert.Kind.UNBOOKED_USE, f"unbooked:{gpu.device_id}:?", host.server_id,
                    f"{where} is {gpu.gpu_util}% busy{booked}, and its processes are not visible.",
                    device_id=gpu.device_id,
                )
                continue
            for unix_user in sorted({p.unix_user or "" for p in gpu.intruders}):
                processes = [p for p in gpu.intruders if (p.unix_user or "") == unix_user]
                member = processes[0].member
                pids = ", ".join(str(p.pid) for p in processes)
                if not unix_user:
                    who = "a user the host could not name"
                elif member is None:
                    who = f"unix user {unix_user} (no member has this user name)"
                else:
                    who = f"{member} (unix user {unix_user})"
                yield Finding(
                    Alert.Kind.UNBOOKED_USE, f"unbooked:{gpu.device_id}:{unix_user}", host.server_id,
                    f"{who} runs {'process' if len(processes) == 1 else 'processes'} {pids} on {where}{booked} without a booking on it.",
                    device_id=gpu.device_id, user_id=processes[0].member_id, unix_username=unix_user,
                )


def idle_bookings(now):
    """Running GPU bookings whose every GPU stayed under IDLE_BOOKING_PERCENT for the whole idle window.

    A booking that started within the window is not judged yet; a GPU without readings covering
    the window (host down, GPU errors) is not judged idle.
    """
    window = parse_duration(settings.IDLE_BOOKING_AFTER)
    since = now - window
    slack = 2 * settings.TELEMETRY_INTERVAL_SECONDS
    allocations = (
        Allocation.objects.active().filter(
            start__lte=since, end__gt=now, unit__device__isnull=False,
            booking__status=Booking.Status.CONFIRMED, booking__server__monitored=True,
        )
        .values_list("booking_id", "booking__server_id", "booking__user_id", "booking__server__name", "unit__device_id", "unit__device__index")
    )
    bookings = {}
    for booking_id, server_id, user_id, server_name, device_id, index in allocations:
        entry = bookings.setdefault(booking_id, {"server_id": server_id, "user_id": user_id, "server": server_name, "devices": {}})
        entry["devices"][device_id] = index
    if not bookings:
        return
    device_ids = {device_id for entry in bookings.values() for device_id in entry["devices"]}
    stats = {
        row["device_id"]: row
        for row in GpuSample.objects.filter(device_id__in=device_ids, taken_at__gte=since, taken_at__lte=now, error="")
        .values("device_id")
        .annotate(peak=Max("gpu_util"), first=Min("taken_at"), last=Max("taken_at"), n=Count("id"))
        .order_by()
    }
    fresh_after = now - stale_after()
    for booking_id, entry in bookings.items():
        rows = [stats.get(device_id) for device_id in entry["devices"]]
        covered = all(
            row and (row["first"] - since).total_seconds() <= slack and row["last"] >= fresh_after for row in rows
        )
        if not covered or any(row["peak"] is None or row["peak"] >= settings.IDLE_BOOKING_PERCENT for row in rows):
            continue
        peak = max(row["peak"] for row in rows)
        gpus = format_device_set(sorted(entry["devices"].values()))
        yield Finding(
            Alert.Kind.IDLE_BOOKING, f"idle:{booking_id}", entry["server_id"],
            f"Booking #{booking_id} ({entry['server']}:{gpus}) has used at most {peak}% of its GPUs "
            f"for the last {format_duration(window)}.",
            booking_id=booking_id, user_id=entry["user_id"],
        )


def _sync(findings, now):
    """Open an alert for each new cause, refresh the open ones still seen, resolve the rest."""
    seen = {finding.key: finding for finding in findings}
    with transaction.atomic():
        open_alerts = {alert.key: alert for alert in Alert.objects.select_for_update().filter(resolved_at__isnull=True)}
        for key, alert in open_alerts.items():
            finding = seen.get(key)
            if finding is None:
                alert.resolved_at = now
                alert.save(update_fields=["resolved_at"])
            else:
                alert.last_seen_at = now
                alert.message = finding.message
                alert.save(update_fields=["last_seen_at", "message"])
    for key, finding in seen.items():
        if key in open_alerts:
            continue
        try:
            with transaction.atomic():
                Alert.objects.create(
                    kind=finding.kind, key=key, server_id=finding.server_id, device_id=finding.device_id,
                    booking_id=finding.booking_id, user_id=finding.user_id, unix_username=finding.unix_username,
                    message=finding.message, opened_at=now, last_seen_at=now,
                )
        except IntegrityError:
            pass  # another detector run opened it a moment ago: one open alert per cause
        else:
            logger.info("alert opened: %s", finding.message)


def _release_idle(now):
    """Release the bookings of open idle alerts where the server's policy says so; returns how many."""
    released = 0
    alerts = Alert.objects.filter(
        kind=Alert.Kind.IDLE_BOOKING, resolved_at__isnull=True, action="",
        booking__server__release_idle_bookings=True, booking__status=Booking.Status.CONFIRMED,
    ).select_related("booking__user")
    for alert in alerts:
        booking = alert.booking
        try:
            release_booking(booking, by=None, now=now)  # the server's policy, not the member: the audit log says the system
        except BookingError as error:
            alert.action = f"Not released: {error.message}"
        else:
            released += 1
            alert.action = f"Released the booking at {now:%Y-%m-%d %H:%M} UTC ({booking.server.name} releases idle bookings)."
            alert.resolved_at = now
        alert.save(update_fields=["action", "resolved_at"])
    return released

