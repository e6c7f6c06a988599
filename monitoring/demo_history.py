"""Telemetry history for the demo (`seed_demo`): hourly rollups for the last 30 days and per-minute
ones for the last 2 days, so history charts and usage analytics show something at once.

Derived from the bookings in the database the way monitoring.demo_host derives a live fake host:
a booked GPU runs its booker's job (each booking at its own intensity, with the fake's 20-minute
load wave on top), one booking in five sits idle holding its memory, and on a server with four
or more GPUs the highest free GPU runs an unbooked job: in the last week, in working hours (and in
the last two hours, where the live fake host takes over). Free GPUs idle.

Only buckets that have no row yet are written, so a second run adds nothing and real telemetry
from an earlier demo is kept. The hours of the last 2 days are then recomputed from the minutes,
as the periodic rollup does, so both resolutions agree.
"""
import bisect
import math
import zlib
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from reservations.models import Allocation, Device

from . import queries
from .demo_host import IDLE_ONE_IN
from .fake_nvml import LOAD_PERIOD_S, RESERVED_MIB
from .models import GpuHour, GpuMinute, Rollup
from .rollup import HOUR, MINUTE, floor_to, rollup_hours

HOURS_BACK = timedelta(days=30)
MINUTES_BACK = timedelta(days=2)
IDLE_POWER_W, POWER_LIMIT_W = 55, 400  # the fake GPU's defaults
UNBOOKED = "unbooked"
UNBOOKED_SINCE = timedelta(days=7)  # the unbooked user turned up this week
UNBOOKED_HOURS = range(8, 20)  # local time
LIVE_EDGE = timedelta(hours=2)
COLUMNS = ("device", "bucket", *Rollup.SUMS, *Rollup.MAXES)


def backfill(servers, now=None):
    """Write the missing hourly (30 days) and per-minute (2 days) rollups of the GPUs of `servers`;
    returns {"hours": rows written, "minutes": rows written}."""
    now = now or timezone.now()
    devices = list(Device.objects.filter(server__in=servers, active=True).select_related("server").order_by("server_id", "index"))
    if not devices:
        return {"hours": 0, "minutes": 0}
    minute_start = floor_to(now - MINUTES_BACK, HOUR)  # whole hours, so each hour gets all its minutes
    minute_end = floor_to(now, MINUTE)  # the current minute is the host agent's
    hour_start = floor_to(now - HOURS_BACK, HOUR)
    timeline = _Timeline(devices, hour_start, minute_end, now)
    with transaction.atomic():
        hours = _write(GpuHour, timeline, _buckets(hour_start, minute_start, HOUR), devices, hourly=True)
        minutes = _write(GpuMinute, timeline, _buckets(minute_start, minute_end, MINUTE), devices, hourly=False)
        rollup_hours(minute_start, now)
    return {"hours": hours, "minutes": minutes}


def _buckets(start, end, step):
    at = start
    while at < end:
        yield at
        at += step


def _write(model, timeline, buckets, devices, *, hourly):
    """Insert the rows of `model` for every (device, bucket) that has none yet; returns how many."""
    buckets = list(buckets)
    if not buckets:
        return 0
    existing = set(
        model.objects.filter(device__in=devices, bucket__gte=buckets[0], bucket__lte=buckets[-1]).values_list("device_id", "bucket")
    )
    step = HOUR if hourly else MINUTE
    samples = int(step.total_seconds()) // settings.TELEMETRY_INTERVAL_SECONDS
    idle = {}  # an idle GPU's bucket is the same at any time
    rows = []
    for bucket in buckets:
        stamp, middle = connection.ops.adapt_datetimefield_value(bucket), bucket + step / 2
        for device, job in timeline.jobs_at(middle):
            if (device.pk, bucket) in existing:
                continue
            if job is None:
                values = idle.get(device.pk) or idle.setdefault(device.pk, _values(device, None, middle, samples, hourly=hourly))
            else:
                values = _values(device, job, middle, samples, hourly=hourly)
            rows.append((device.pk, stamp, *values))
    queries.insert_plain(model, COLUMNS, rows)
    return len(rows)


class _Timeline:
    """Which job each GPU runs at a moment: a booking id, UNBOOKED, or None (idle)."""

    def __init__(self, devices, start, end, now):
        self.now = now
        intervals = defaultdict(list)
        rows = (
            Allocation.objects.active().overlapping(start, end).filter(unit__device__in=devices)
            .values_list("unit__device_id", "start", "end", "booking_id")
            .order_by("start")
        )
        for device_id, begin, finish, booking_id in rows:
            intervals[device_id].append((begin, finish, booking_id))
        self.intervals = intervals
        self.starts = {device_id: [begin for begin, _, _ in spans] for device_id, spans in intervals.items()}
        self.servers = defaultdict(list)
        for device in devices:
            self.servers[device.server_id].append(device)

    def booking_at(self, device, moment):
        spans = self.intervals.get(device.pk)
        if not spans:
            return None
        # Active allocations of one unit never overlap: the last one starting by `moment` is the candidate.
        i = bisect.bisect_right(self.starts[device.pk], moment) - 1
        if i >= 0 and spans[i][1] > moment:
            return spans[i][2]
        return None

    def unbooked_use_at(self, moment):
        if moment < self.now - UNBOOKED_SINCE:
            return False
        return moment >= self.now - LIVE_EDGE or timezone.localtime(moment).hour in UNBOOKED_HOURS

    def jobs_at(self, moment):
        """(device, job) for every GPU, as demo_host.fake_host_for would run them at `moment`."""
        for server_devices in self.servers.values():
            jobs = [self.booking_at(device, moment) for device in server_devices]
            free = [i for i, job in enumerate(jobs) if job is None]
            if len(server_devices) >= 4 and free and self.unbooked_use_at(moment):
                jobs[free[-1]] = UNBOOKED
            yield from zip(server_devices, jobs)


def _values(device, job, moment, samples, *, hourly):
    """A rollup bucket's sums and peaks (Rollup.SUMS, then Rollup.MAXES) for `samples` samples of
    `device` running `job` around `moment`."""
    memory_total = device.memory_mib or 81920
    if job is None:
        load, held = 0.01, 0
    elif job == UNBOOKED:
        load, held = _load(device, "unbooked", moment, hourly), int(memory_total * 0.3)
    elif job % IDLE_ONE_IN == 0:
        load, held = 0.01, int(memory_total * 0.7)  # a notebook kernel left open: memory held, no work
    else:
        load, held = _load(device, job, moment, hourly), int(memory_total * 0.7)
    util = round(100 * load)
    spread = (18 if hourly else 4) if util >= settings.GPU_ACTIVE_PERCENT else 1  # how far a bucket's peak lies above its mean
    memory = RESERVED_MIB + int(held * (0.9 + 0.1 * load)) if held else RESERVED_MIB
    power = IDLE_POWER_W + (POWER_LIMIT_W - IDLE_POWER_W) * load
    active = settings.GPU_ACTIVE_PERCENT
    sums = {
        "samples": samples,
        "errors": 0,
        "gpu_util_sum": util * samples,
        "active_samples": samples if util >= active else 0,
        "mem_util_sum": round(60 * load) * samples,
        "memory_used_sum": memory * samples,
        "power_samples": samples,
        "power_sum": round(power, 1) * samples,
    }
    maxes = {
        "gpu_util_max": min(100, util + spread),
        "memory_used_max": min(memory_total, memory + (int(held * 0.05) if util >= active else 0)),
        "temperature_max": round(32 + 50 * min(1.0, load + spread / 100)),
        "power_max": round(min(POWER_LIMIT_W * 1.02, power + 3.5 * spread), 1),
    }
    return (*(sums[name] for name in Rollup.SUMS), *(maxes[name] for name in Rollup.MAXES))


def _load(device, job, moment, hourly):
    """Busy fraction: the job's own intensity, the fake's 20-minute wave (which averages out over an
    hour, so hourly buckets leave it out), and a little noise."""
    intensity = 0.45 + 0.4 * _unit("intensity", job)
    seconds = moment.timestamp()
    wave = 0.0 if hourly else 0.2 * math.sin(2 * math.pi * (seconds / LOAD_PERIOD_S + _unit("phase", device.pk)))
    noise = 0.08 * (_unit("noise", device.pk, int(seconds)) - 0.5)
    return min(1.0, max(0.06, intensity + wave + noise))


def _unit(*parts):
    """A stable number in [0, 1) for `parts`."""
    return zlib.crc32(":".join(map(str, parts)).encode()) / 2**32
