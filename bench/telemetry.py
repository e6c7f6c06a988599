"""Benchmark of GPU telemetry: sampling, sustained ingest, history and usage analytics; prints one JSON object.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test SECRET_KEY=x .venv/bin/python bench/telemetry.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test SECRET_KEY=x .venv/bin/python bench/telemetry.py --disk

Like bench/booking.py (whose database helpers it uses), it never touches the database
DATABASE_URL names: it creates labres_bench_telemetry on the same server, migrates it, fills it
and drops it at the end (--keep keeps it). The lab: 50 servers x 8 GPUs (400 GPUs), 5 members,
a month of bookings. What it measures:
  sample     one host reading its 8 GPUs through the fake NVML and storing them
             (sampler.read_host + services.record_reading), median and p95 over --rounds rounds
  ingest     400 GPUs at one reading per host every 15 s for --ingest-minutes simulated minutes,
             with the per-minute rollup and alert detection, as CPU seconds per minute of samples:
             this process's CPU (time.process_time) and its PostgreSQL backend's (/proc/<pid>/stat)
  history    monitoring.history.gpu_history of one GPU over the last hour, day, week and month,
             with 30 days of hourly rollups, 2 days of minute rollups and 48 h of raw samples loaded
  analytics  the usage page over 30 days (400 GPUs) through Django's test client, signed in
With --disk it measures instead what a row of each telemetry table costs on disk (table, TOAST and
indexes) and from that the cost per GPU per day and for 400 GPUs with the default retentions.
Progress goes to stderr. See bench/README.md.
"""
import argparse
import json
import logging
import os
import random
import sys
import time
import zlib
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on the path: the repository root goes there instead, so that bench.* and the apps import.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labres.settings")

from bench.booking import (  # noqa: E402
    GPUS_PER_SERVER,
    SERVERS,
    SLOT_PATTERNS,
    add_database_options,
    analyze,
    create_lab,
    database_context,
    end_bench_database,
    insert_history,
    log,
    point_at_bench_database,
    run_context,
    summarize,
)

INTERVAL_S = 15
SAMPLES_PER_DAY = 24 * 3600 // INTERVAL_S  # 5,760
HISTORY_DAYS = 30
TARGET_INGEST_PERCENT = 5
TARGET_READ_MS = 100
DISK_ROWS = 100_000
UNIX_USERS = ["alice", "bob", "carol", "d.knuth", "e.noether"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="sampling rounds of one host (default 200)")
    parser.add_argument("--ingest-minutes", type=int, default=10, help="simulated minutes of 400 GPUs at 15 s (default 10)")
    parser.add_argument("--queries", type=int, default=50, help="timed history queries per period (default 50)")
    parser.add_argument("--requests", type=int, default=20, help="timed requests of the usage page (default 20)")
    parser.add_argument("--disk", action="store_true", help=f"measure bytes per row ({DISK_ROWS:,} rows a table) and the disk cost instead")
    add_database_options(parser, "labres_bench_telemetry", sqlite=False)
    return parser.parse_args()


# --- fake hosts and their readings ------------------------------------------------------------


def fake_host(name, rng, clock):
    """A FakeNVML of 8 GPUs like a busy lab host: most GPUs run one or two jobs, a few are free."""
    from monitoring.fake_nvml import FakeGPU, FakeNVML, FakeProcess

    gpus = []
    for index in range(GPUS_PER_SERVER):
        jobs = rng.choices([0, 1, 2], weights=[2, 6, 2])[0]
        processes = [
            FakeProcess(pid=rng.randint(1000, 4_000_000), user=rng.choice(UNIX_USERS), memory_mib=rng.choice([8192, 20480, 40960]))
            for _ in range(jobs)
        ]
        gpus.append(FakeGPU(processes=processes))
    return FakeNVML(gpus, clock=clock, seed=zlib.crc32(name.encode()))


class Clock:
    """A settable clock for the fake hosts: simulated time, so a minute of samples takes no minute."""

    def __init__(self, at):
        self.at = at

    def __call__(self):
        return self.at.timestamp()


# --- CPU of this process and of its PostgreSQL backend ---------------------------------------------


class Cpu:
    """CPU seconds spent so far by this process and by the PostgreSQL backend serving its connection.

    The backend's comes from /proc/<pid>/stat (utime + stime), so only where PostgreSQL runs on
    this machine and we may read its /proc; otherwise it is reported as unknown.
    """

    def __init__(self, vendor):
        self.backend_stat = None
        if vendor == "postgresql":
            from django.db import connection

            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pid = cursor.fetchone()[0]
            path = Path(f"/proc/{pid}/stat")
            if path.exists():
                self.backend_stat = path
        self.tick = os.sysconf("SC_CLK_TCK")

    def now(self):
        return time.process_time(), self._backend()

    def _backend(self):
        if self.backend_stat is None:
            return None
        # Fields 14 and 15 (utime, stime) after the command name, which may itself contain spaces.
        fields = self.backend_stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick


class Meter:
    """Adds up the CPU of named parts of the work, this process's and the database backend's."""

    def __init__(self, cpu):
        self.cpu = cpu
        self.python = {}
        self.database = {}

    def measure(self, part, work, *args, **kwargs):
        python_before, database_before = self.cpu.now()
        result = work(*args, **kwargs)
        python_after, database_after = self.cpu.now()
        self.python[part] = self.python.get(part, 0.0) + python_after - python_before
        if database_before is not None:
            self.database[part] = self.database.get(part, 0.0) + database_after - database_before
        return result


# --- fixtures ---------------------------------------------------------------------------


def give_unix_user_names(users):
    """Each member's user name on the hosts, so the fake hosts' jobs match their bookings."""
    from reservations.models import Profile

    for user in users:
        Profile.objects.update_or_create(user=user, defaults={"unix_username": user.username})


def plan_month(servers, users, now, rng):
    """A month of past and running bookings, as bench.booking.insert_history takes them: each server's
    time is cut into slots of 2-24 h, each slot holds disjoint GPU sets (or the whole server)."""
    from reservations.models import Unit

    units = {}
    for unit in Unit.objects.filter(server__in=servers).select_related("device"):
        entry = units.setdefault(unit.server_id, [None, [None] * GPUS_PER_SERVER])
        if unit.kind == Unit.Kind.SERVER:
            entry[0] = unit.pk
        else:
            entry[1][unit.device.index] = unit.pk
    plan = []
    for server in servers:
        server_unit, gpu_units = units[server.pk]
        at = now - timedelta(days=HISTORY_DAYS)
        while at < now:
            length = timedelta(hours=rng.randint(2, 24))
            free = list(range(GPUS_PER_SERVER))
            rng.shuffle(free)
            for size in rng.choice(SLOT_PATTERNS):
                if size is None:
                    unit_ids, whole = [server_unit, *gpu_units], True
                else:
                    unit_ids, whole = [gpu_units[i] for i in free[:size]], False
                    free = free[size:]
                end = at + length * rng.uniform(0.5, 1.0)
                plan.append((server.pk, whole, tuple(unit_ids), at, end, rng.choice(users).pk))
            at += length
    return plan


def settle_month(now, rng):
    """BookingUsage for every GPU booking that ended, as the 5-minute settle task leaves them (fixture rows)."""
    from monitoring.models import BookingUsage
    from reservations.models import Booking

    rows = []
    bookings = list(Booking.objects.filter(server__isnull=False, end__lte=now).values_list("pk", "start", "end"))
    gpu_counts = _gpu_counts([pk for pk, _, _ in bookings])
    for pk, start, end in bookings:
        booked = gpu_counts.get(pk, 1) * (end - start).total_seconds() / 3600
        share = rng.random()
        rows.append(BookingUsage(
            booking_id=pk, samples=int(booked * 240), gpu_util_mean=round(100 * share * 0.8, 1), gpu_util_peak=min(100, int(100 * share) + 10),
            memory_peak_mib=rng.randint(1000, 81920), booked_gpu_hours=booked, used_gpu_hours=booked * share, source="hour", settled_at=end,
        ))
    BookingUsage.objects.bulk_create(rows, batch_size=5000)
    return len(rows)


def _gpu_counts(booking_ids):
    from django.db.models import Count

    from reservations.models import Allocation

    return dict(
        Allocation.objects.filter(booking_id__in=booking_ids, unit__device__isnull=False)
        .values_list("booking_id").annotate(n=Count("id")).values_list("booking_id", "n")
    )


def load_telemetry(start, end):
    """Raw samples for [end - 48 h, end), minute rollups for [end - 2 d, end) and hourly ones for
    [start, end) for every GPU, written by PostgreSQL itself (millions of rows), in time order as
    the hosts write them. Returns the rows written per table."""
    from django.db import connection

    counts = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(
            """
            INSERT INTO monitoring_gpusample (device_id, taken_at, gpu_util, mem_util, memory_used_mib, temperature_c,
                                              power_w, power_limit_w, processes, processes_note, error)
            SELECT d.id, t, u, u * 6 / 10, 420 + u * 600, 30 + u / 2, 55 + u * 3.45, 400,
                   CASE WHEN u < 5 THEN '[]'::jsonb
                        ELSE jsonb_build_array(jsonb_build_object('pid', 20000 + d.id, 'used_memory_mib', 420 + u * 600,
                                                                  'user', 'user' || mod(d.id, 7)))
                   END, '', ''
            FROM generate_series(%s::timestamptz, %s::timestamptz - interval '1 second', interval '15 seconds') AS t
            CROSS JOIN reservations_device AS d
            CROSS JOIN LATERAL (SELECT (random() * 100)::int + 0 * d.id AS u) AS r
            ORDER BY t, d.id
            """,
            [end - timedelta(hours=48), end],
        )
        counts["raw"] = cursor.rowcount
        for table, step, samples, since in (
            ("monitoring_gpuminute", "1 minute", 4, end - timedelta(days=2)),
            ("monitoring_gpuhour", "1 hour", 240, start),
        ):
            cursor.execute(
                f"""
                INSERT INTO {table} (device_id, bucket, samples, errors, gpu_util_sum, gpu_util_max, active_samples,
                                     mem_util_sum, memory_used_sum, memory_used_max, temperature_max, power_samples,
                                     power_sum, power_max)
                SELECT d.id, b, {samples}, 0, u * {samples}, LEAST(100, u + 10), CASE WHEN u >= 5 THEN {samples} ELSE 0 END,
                       u * 6 / 10 * {samples}, (420 + u * 600) * {samples}, 420 + u * 650, 30 + u / 2, {samples},
                       (55 + u * 3.45) * {samples}, 60 + u * 3.45
                FROM generate_series(%s::timestamptz, %s::timestamptz - interval '1 second', interval '{step}') AS b
                CROSS JOIN reservations_device AS d
                CROSS JOIN LATERAL (SELECT (random() * 100)::int + 0 * d.id AS u) AS r
                ORDER BY b, d.id
                """,
                [since, end],
            )
            counts[table.removeprefix("monitoring_gpu")] = cursor.rowcount
    analyze()
    return counts


# --- measurements -----------------------------------------------------------------------


def measure_sampling(server, rounds, rng):
    """read_host + record_reading of one 8-GPU host, at the wall clock; warm-up excluded."""
    from monitoring.sampler import read_host
    from monitoring.services import record_reading

    fake = fake_host(server.name, rng, time.time)
    read, store, total = [], [], []
    for i in range(10 + rounds):
        began = time.perf_counter()
        reading = read_host(fake)
        read_done = time.perf_counter()
        record_reading(server, reading, agent_version="bench")
        ended = time.perf_counter()
        if i >= 10:
            read.append(read_done - began)
            store.append(ended - read_done)
            total.append(ended - began)
    return {
        "note": "one host, 8 GPUs with 0-2 processes each: read_host through the fake NVML, then record_reading (one transaction)",
        "total": summarize(total),
        "read_fake_nvml": summarize(read),
        "record_reading": summarize(store),
    }


def measure_ingest(servers, start, minutes, cpu, rng):
    """Every host reads and stores its 8 GPUs each 15 s of simulated time; each simulated minute the
    rollup and the alert detection run, as beat runs them. Returns CPU per minute of samples."""
    from monitoring.alerts import detect
    from monitoring.demo_host import fake_host_for
    from monitoring.rollup import rollup_recent
    from monitoring.sampler import read_host
    from monitoring.services import record_reading

    clock = Clock(start)
    # Hosts shaped by the bookings running at the start, as in the demo: the bookers' jobs (one booking
    # in five idle) and one unbooked job per host.
    hosts = [(server, fake_host_for(server, clock=clock, now=start)) for server in servers]
    # Warm-up, untimed: the first reading of each host learns its GPUs' UUIDs.
    for server, fake in hosts:
        record_reading(server, read_host(fake, now=start - timedelta(seconds=INTERVAL_S)))

    meter = Meter(cpu)
    steps = minutes * 60 // INTERVAL_S
    began = time.perf_counter()
    for step in range(steps):
        clock.at = start + timedelta(seconds=step * INTERVAL_S)
        for server, fake in hosts:
            reading = meter.measure("read_fake_nvml", read_host, fake, now=clock.at)
            meter.measure("store", record_reading, server, reading, agent_version="bench")
        if (step + 1) % (60 // INTERVAL_S) == 0:
            minute_end = clock.at + timedelta(seconds=INTERVAL_S)
            meter.measure("rollup", rollup_recent, now=minute_end)
            meter.measure("detect_alerts", detect, now=minute_end)
    wall = time.perf_counter() - began

    parts = ["store", "rollup", "detect_alerts"]
    per_minute = {
        "python": {part: round(meter.python[part] / minutes, 4) for part in ["read_fake_nvml", *parts]},
        "postgres_backend": {part: round(meter.database[part] / minutes, 4) for part in parts} if meter.database else None,
    }
    total_per_minute = (sum(meter.python[part] for part in parts) + sum(meter.database.get(part, 0.0) for part in parts)) / minutes
    # What the portal's side pays: the database for everything, the portal's worker for rollup and detection.
    # Storing a reading's Python runs in each host's agent, spread over the 50 hosts.
    central_per_minute = total_per_minute - meter.python["store"] / minutes
    return {
        "note": (
            "CPU seconds per minute of samples (400 GPUs, one reading per host every 15 s). 'total' = storing the "
            "readings + the per-minute rollup + the per-minute alert detection, in Python and in the PostgreSQL backend "
            "serving this connection (/proc/<pid>/stat; WAL writer, checkpointer and autovacuum not included). "
            "'central' leaves out the Python of storing, which runs in each host's agent (spread over 50 hosts). "
            "read_fake_nvml is the simulation's own cost (on real hosts NVML's, spread over the hosts) and is in neither."
        ),
        "gpus": len(servers) * GPUS_PER_SERVER,
        "interval_s": INTERVAL_S,
        "simulated_minutes": minutes,
        "readings": steps * len(servers),
        "samples": steps * len(servers) * GPUS_PER_SERVER,
        "wall_seconds": round(wall, 2),
        "cpu_seconds_per_minute": per_minute,
        "total_cpu_seconds_per_minute": round(total_per_minute, 3),
        "percent_of_one_core": round(100 * total_per_minute / 60, 2),
        "central_cpu_seconds_per_minute": round(central_per_minute, 3),
        "central_percent_of_one_core": round(100 * central_per_minute / 60, 2),
        "per_host_agent_percent_of_one_core": round(100 * meter.python["store"] / minutes / len(servers) / 60, 3),
        "postgres_backend_measured": bool(meter.database),
        "target_percent": TARGET_INGEST_PERCENT,
        "meets_target": 100 * total_per_minute / 60 < TARGET_INGEST_PERCENT,
    }


def measure_history(devices, now, queries, rng):
    """gpu_history of a random GPU over each named period ending now, at the resolution it picks."""
    from monitoring.history import PERIODS, gpu_history

    results = {}
    for name, length in PERIODS.items():
        for _ in range(5):
            gpu_history(rng.choice(devices), now - length, now)
        timings, points, resolution = [], [], None
        for _ in range(queries):
            began = time.perf_counter()
            resolution, rows = gpu_history(rng.choice(devices), now - length, now)
            timings.append(time.perf_counter() - began)
            points.append(len(rows))
        stats = summarize(timings)
        results[name] = {
            "resolution": resolution,
            "points": sorted(points)[len(points) // 2],
            "median_ms": stats["median_ms"],
            "p95_ms": stats["p95_ms"],
            "max_ms": stats["max_ms"],
            "meets_target": stats["median_ms"] < TARGET_READ_MS,
        }
        log(f"  history {name}: {resolution}, {results[name]['points']} points, median {stats['median_ms']:.1f} ms")
    return results


def measure_analytics(client, today, requests):
    """The usage page over the last 30 days, computed afresh (cache cleared before each request) and as a
    repeat view within the page's cache time; skipped with a note while the page does not exist."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import NoReverseMatch, reverse

    try:
        path = reverse("usage")
    except NoReverseMatch:
        return {"skipped": "no URL named 'usage' yet: the usage analytics page is not wired up, so it was not measured"}
    url = f"{path}?start={today - timedelta(days=HISTORY_DAYS - 1):%Y-%m-%d}&end={today:%Y-%m-%d}"
    for _ in range(3):
        cache.clear()
        response = client.get(url)
    if response.status_code != 200:
        return {"url": url, "status": response.status_code, "note": "not measured: the page does not answer 200"}
    results = {"url": url, "status": response.status_code, "kilobytes": round(len(response.content) / 1024, 1)}
    for name, cold in (("fresh", True), ("cached", False)):
        timings = []
        for _ in range(requests):
            if cold:
                cache.clear()
            began = time.perf_counter()
            client.get(url)
            timings.append(time.perf_counter() - began)
        if cold:
            cache.clear()
        with CaptureQueriesContext(connection) as captured:
            client.get(url)
        stats = summarize(timings)
        results[name] = {
            "queries": len(captured),
            "median_ms": stats["median_ms"],
            "p95_ms": stats["p95_ms"],
            "max_ms": stats["max_ms"],
            "meets_target": stats["median_ms"] < TARGET_READ_MS,
        }
        log(f"  usage page, {name}: median {stats['median_ms']:.1f} ms, {len(captured)} queries")
    results["note"] = "'fresh': the report computed (cache cleared before each request); 'cached': a repeat view within the page's cache time"
    results["meets_target"] = results["fresh"]["meets_target"]
    return results


# --- disk -------------------------------------------------------------------------------


TABLES = {"raw": "monitoring_gpusample", "minute": "monitoring_gpuminute", "hour": "monitoring_gpuhour"}


def table_bytes():
    """pg_total_relation_size (heap, TOAST, free-space and visibility maps, every index) of each telemetry table."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join(f"pg_total_relation_size('{table}')" for table in TABLES.values())
        )
        return dict(zip(TABLES, cursor.fetchone()))


def write_disk_rows(servers, now, rng):
    """DISK_ROWS raw samples through record_reading (one reading per host, hosts in turn, as the agents
    write them), then DISK_ROWS minute and hour rollups with believable, non-null values."""
    from monitoring.models import GpuHour, GpuMinute
    from monitoring.sampler import read_host
    from monitoring.services import record_reading
    from reservations.models import Device

    clock = Clock(now)
    hosts = [(server, fake_host(server.name, rng, clock)) for server in servers]
    steps = DISK_ROWS // (len(servers) * GPUS_PER_SERVER)
    start = now - timedelta(seconds=steps * INTERVAL_S)
    for step in range(steps):
        clock.at = start + timedelta(seconds=step * INTERVAL_S)
        for server, fake in hosts:
            record_reading(server, read_host(fake, now=clock.at), agent_version="bench")
    devices = list(Device.objects.order_by("pk").values_list("pk", flat=True))
    for model, step_length in ((GpuMinute, timedelta(minutes=1)), (GpuHour, timedelta(hours=1))):
        samples = int(step_length.total_seconds()) // INTERVAL_S
        first = now - step_length * (DISK_ROWS // len(devices))
        rows = []
        for k in range(DISK_ROWS // len(devices)):
            bucket = first + k * step_length
            for device_id in devices:
                util = rng.randint(0, 100)
                rows.append(model(
                    device_id=device_id, bucket=bucket, samples=samples, errors=0, gpu_util_sum=util * samples,
                    gpu_util_max=min(100, util + 9), active_samples=samples if util >= 5 else 0, mem_util_sum=util * 6 // 10 * samples,
                    memory_used_sum=(420 + util * 600) * samples, memory_used_max=420 + util * 650, temperature_max=30 + util // 2,
                    power_samples=samples, power_sum=(55 + util * 3.45) * samples, power_max=60 + util * 3.45,
                ))
        model.objects.bulk_create(rows, batch_size=5000)


def measure_disk(servers, now, rng):
    """Bytes per row of each telemetry table, and the disk cost per GPU per day and for 400 GPUs kept as the settings say."""
    from django.db import connection

    from monitoring.models import GpuHour, GpuMinute, GpuSample
    from monitoring.rollup import retention

    before = table_bytes()
    write_disk_rows(servers, now, rng)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE monitoring_gpusample, monitoring_gpuminute, monitoring_gpuhour")
    after = table_bytes()
    rows = {"raw": GpuSample.objects.count(), "minute": GpuMinute.objects.count(), "hour": GpuHour.objects.count()}
    per_row = {kind: (after[kind] - before[kind]) / rows[kind] for kind in TABLES}
    per_day = {"raw": SAMPLES_PER_DAY, "minute": 24 * 60, "hour": 24}
    keep = retention()
    kept_days = {kind: keep[kind].total_seconds() / 86400 for kind in TABLES}
    gpus = SERVERS * GPUS_PER_SERVER
    per_gpu_day = {kind: per_row[kind] * per_day[kind] for kind in TABLES}
    steady = {kind: per_gpu_day[kind] * kept_days[kind] * gpus for kind in TABLES}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT avg(pg_column_size(processes)), avg(jsonb_array_length(processes)) FROM monitoring_gpusample WHERE processes IS NOT NULL"
        )
        json_bytes, processes = cursor.fetchone()
    mib = 1024 * 1024
    return {
        "note": (
            "pg_total_relation_size (heap + TOAST + indexes) after inserting the rows into empty tables, divided by the "
            "rows; raw samples written through record_reading from fake hosts whose GPUs run 0-2 processes. Freshly "
            "written tables: the rollups' upserts leave dead row versions that autovacuum reclaims."
        ),
        "rows": rows,
        "bytes_per_row": {kind: round(value, 1) for kind, value in per_row.items()},
        "processes_json": {"mean_bytes": round(float(json_bytes), 1), "mean_processes": round(float(processes), 2)},
        "rows_per_gpu_per_day_at_15s": per_day,
        "bytes_per_gpu_per_day": {kind: round(value) for kind, value in per_gpu_day.items()},
        "retention_days": {kind: round(value, 2) for kind, value in kept_days.items()},
        "steady_state_400_gpus_mib": {
            **{kind: round(value / mib, 1) for kind, value in steady.items()},
            "total": round(sum(steady.values()) / mib, 1),
        },
        "year_of_raw_without_rollups_400_gpus_gib": round(per_gpu_day["raw"] * 365 * gpus / 1024**3, 1),
    }


# --- main -------------------------------------------------------------------------------


def main():
    args = parse_args()
    began = time.perf_counter()
    from django.conf import settings as configured

    if configured.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        sys.exit(
            "The telemetry benchmark runs on PostgreSQL only (it loads history with generate_series and reads "
            "table sizes and backend CPU): set DATABASE_URL=postgres://... (e.g. postgres://postgres@127.0.0.1:5432/test)."
        )
    args.allow_sqlite = False  # bench.booking's helpers ask
    vendor = point_at_bench_database(args)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from reservations.models import Device

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    logging.getLogger("monitoring").setLevel(logging.WARNING)  # the detector logs every alert it opens
    result = None
    try:
        log(f"migrating the {vendor} database {args.db_name}")
        call_command("migrate", verbosity=0, interactive=False)
        rng = random.Random(args.seed)
        now = timezone.now()
        log(f"creating {SERVERS} servers x {GPUS_PER_SERVER} GPUs")
        servers, users = create_lab()
        give_unix_user_names(users)

        if args.disk:
            log(f"writing {DISK_ROWS:,} rows to each telemetry table")
            disk = measure_disk(servers, now, rng)
            result = {"benchmark": "labres telemetry disk cost", "database": database_context(vendor, args), "disk": disk}
        else:
            ingest_start = (now - timedelta(minutes=args.ingest_minutes + 1)).replace(second=0, microsecond=0)
            log("planning and inserting a month of bookings")
            plan = plan_month(servers, users, now, rng)
            insert_history(plan)
            log("loading 48 h of raw samples, 2 days of minutes and 30 days of hours for 400 GPUs")
            loaded_at = time.perf_counter()
            loaded = load_telemetry(now - timedelta(days=HISTORY_DAYS), ingest_start)
            load_seconds = time.perf_counter() - loaded_at
            settled = settle_month(ingest_start, rng)
            log(f"loaded {loaded} in {load_seconds:.0f} s; {settled} bookings settled")

            cpu = Cpu(vendor)
            log(f"ingest: {args.ingest_minutes} simulated minutes of 400 GPUs")
            ingest = measure_ingest(servers, ingest_start, args.ingest_minutes, cpu, rng)
            log(f"  {ingest['percent_of_one_core']} % of one core")
            log(f"sampling one host, {args.rounds} rounds")
            sample = measure_sampling(servers[0], args.rounds, rng)
            analyze()
            devices = list(Device.objects.values_list("pk", flat=True))
            log("history queries")
            history = measure_history(devices, timezone.now(), args.queries, rng)
            client = Client()
            client.force_login(users[0])
            log("usage page")
            analytics = measure_analytics(client, timezone.localdate(), args.requests)
            result = {
                "benchmark": "labres telemetry",
                "database": database_context(vendor, args),
                "setup": {
                    "servers": SERVERS,
                    "gpus": SERVERS * GPUS_PER_SERVER,
                    "bookings": len(plan),
                    "bookings_settled": settled,
                    "telemetry_rows_loaded": loaded,
                    "telemetry_load_seconds": round(load_seconds, 1),
                },
                "sample": sample,
                "ingest": ingest,
                "history": history,
                "analytics": analytics,
                "targets": {
                    "ingest_under_5_percent_of_one_core": ingest["meets_target"],
                    "history_month_median_under_100_ms": history["month"]["meets_target"],
                    "analytics_median_under_100_ms": analytics.get("meets_target"),
                },
            }
        result["context"] = run_context(args)
        result["total_seconds"] = round(time.perf_counter() - began, 1)
    finally:
        end_bench_database(vendor, args)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
