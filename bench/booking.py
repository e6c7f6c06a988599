"""Benchmark of booking writes through reservations.services; prints one JSON object on stdout.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test SECRET_KEY=x .venv/bin/python bench/booking.py

It never touches the database DATABASE_URL names: it creates a database of its own on the
same server (labres_bench), migrates it, fills it and drops it at the end (--keep keeps it).
What it measures, on 50 servers x 8 GPUs:
  create      one create_booking on a random GPU subset, after 1,000 and after 100,000 past
              bookings (the conflict check should not slow down as history grows)
  conflict    a create refused with BookingConflict
  concurrent  8 threads creating bookings for a while, partly on the same units and times;
              afterwards no two active allocations of one unit may overlap
Progress goes to stderr. See bench/README.md.
"""
import argparse
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on the path: the repository root goes there instead, so that bench.* and the apps import.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labres.settings")

SERVERS = 50
GPUS_PER_SERVER = 8
USERS = 5
FIRST_HISTORY = 1_000
HISTORY_DAYS = 365
CHUNK = 5_000

# How the GPUs of one server are split among the bookings of one slot of its history.
# None is the whole server; a slot may also leave GPUs idle.
SLOT_PATTERNS = [[None], [8], [4, 4], [4, 2, 2], [4, 2, 1, 1], [2, 2, 2, 2], [2, 2, 1], [4], [2], [1, 1], [1]]
SUBSET_SIZES = [1, 1, 2, 2, 4, 8]


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_context(args):
    """What a figure depends on besides the code: versions, cores, the seed."""
    import django

    return {
        "python": platform.python_version(),
        "django": django.get_version(),
        "cpus": os.cpu_count(),
        "seed": args.seed,
        "kept_database": args.keep,
    }


def add_database_options(parser, db_name, *, sqlite=True):
    """The options every benchmark takes: its throwaway database, keeping it, SQLite, the random seed."""
    parser.add_argument("--db-name", default=db_name, help=f"the throwaway database to create (default {db_name})")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    if sqlite:
        parser.add_argument("--allow-sqlite", action="store_true", help="run on SQLite too (a file under var/); not what production runs")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=500, help="creates measured at each history size (default 500)")
    parser.add_argument("--history", type=int, default=100_000, help="past bookings at the second measurement (default 100000)")
    parser.add_argument("--writers", type=int, default=8, help="concurrent writer threads (default 8)")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long the writers run (default 15)")
    add_database_options(parser, "labres_bench")
    args = parser.parse_args()
    if args.history < FIRST_HISTORY:
        parser.error(f"--history must be at least {FIRST_HISTORY}")
    return args


# --- the throwaway database -----------------------------------------------------------------


def point_at_bench_database(args):
    """Create an empty benchmark database and point Django's default connection at it (before setup)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.postgresql":
        if db["NAME"] == args.db_name:
            sys.exit(f"DATABASE_URL names the database {args.db_name!r} itself; the benchmark drops it. Use --db-name.")
        with _maintenance_connection(db) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.db_name}"')
            conn.execute(f'CREATE DATABASE "{args.db_name}"')
        db["NAME"] = args.db_name
        return "postgresql"
    if db["ENGINE"] == "django.db.backends.sqlite3":
        if not args.allow_sqlite:
            sys.exit(
                "The database is SQLite, not PostgreSQL. Run with DATABASE_URL=postgres://... "
                "(e.g. postgres://postgres@127.0.0.1:5432/test), or pass --allow-sqlite to measure SQLite anyway."
            )
        path = Path(settings.VAR_DIR) / f"{args.db_name}.sqlite3"
        _remove_sqlite(path)
        db["NAME"] = str(path)
        return "sqlite"
    sys.exit(f"Unsupported database engine {db['ENGINE']}; the benchmark runs on PostgreSQL (or SQLite with --allow-sqlite).")


def end_bench_database(vendor, args):
    """At the end of a run: keep the benchmark database (--keep), else drop it."""
    from django.conf import settings
    from django.db import connections

    if args.keep:
        log(f"keeping the database {args.db_name}")
        return
    log(f"dropping the database {args.db_name}")
    connections.close_all()
    db = settings.DATABASES["default"]
    if vendor == "sqlite":
        _remove_sqlite(Path(db["NAME"]))
        return
    with _maintenance_connection(db) as conn:
        force = " WITH (FORCE)" if conn.info.server_version >= 130000 else ""
        conn.execute(f'DROP DATABASE IF EXISTS "{args.db_name}"{force}')


def _maintenance_connection(db):
    """An autocommit psycopg connection to the server's 'postgres' database, else to the configured one."""
    import psycopg

    params = {key: db.get(name) for key, name in (("host", "HOST"), ("port", "PORT"), ("user", "USER"), ("password", "PASSWORD"))}
    params = {key: str(value) for key, value in params.items() if value}
    try:
        return psycopg.connect(dbname="postgres", autocommit=True, **params)
    except psycopg.OperationalError:
        return psycopg.connect(dbname=db["NAME"], autocommit=True, **params)


def _remove_sqlite(path):
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# --- fixtures ---------------------------------------------------------------------------


def create_lab():
    """50 servers x 8 GPUs and a handful of users, through the models (their save() makes the units)."""
    from django.contrib.auth import get_user_model

    from reservations.models import Device, Server

    users = []
    for i in range(USERS):
        user = get_user_model()(username=f"bench{i}", email=f"bench{i}@lab.example.org", first_name="Bench", last_name=str(i))
        user.set_unusable_password()
        user.save()
        users.append(user)
    servers = []
    for s in range(SERVERS):
        server = Server.objects.create(name=f"node{s:02d}", hostname=f"node{s:02d}.lab.example.org")
        for index in range(GPUS_PER_SERVER):
            Device.objects.create(server=server, index=index, model="NVIDIA A100-SXM4-80GB", memory_mib=81920)
        servers.append(server)
    return servers, users


def plan_history(servers, users, total, now, rng):
    """Past bookings as plain tuples, non-overlapping per unit, spread over the last year.

    Each server's history is a row of slots going back from now, one slot per time window;
    the bookings of a slot hold disjoint units, so no two of them overlap anywhere.
    """
    from reservations.models import Unit

    units = {}  # server id -> [server unit id, [gpu unit ids by index]]
    for unit in Unit.objects.filter(server__in=servers).select_related("device"):
        entry = units.setdefault(unit.server_id, [None, [None] * GPUS_PER_SERVER])
        if unit.kind == Unit.Kind.SERVER:
            entry[0] = unit.pk
        else:
            entry[1][unit.device.index] = unit.pk

    per_server = [total // len(servers) + (1 if i < total % len(servers) else 0) for i in range(len(servers))]
    plan = []
    for server, wanted in zip(servers, per_server):
        server_unit, gpu_units = units[server.pk]
        slots = []
        count = 0
        while count < wanted:
            pattern = rng.choice(SLOT_PATTERNS)[: wanted - count]
            slots.append(pattern)
            count += len(pattern)
        window = timedelta(days=HISTORY_DAYS) / len(slots)
        for k, pattern in enumerate(slots):
            # Slot k lies inside window k counted back from an hour ago; it fills 30-100% of it.
            window_end = now - timedelta(hours=1) - k * window
            start = window_end - window
            end = start + window * rng.uniform(0.3, 1.0)
            free = list(range(GPUS_PER_SERVER))
            rng.shuffle(free)
            for size in pattern:
                if size is None:
                    unit_ids, whole = [server_unit, *gpu_units], True
                else:
                    unit_ids, whole = [gpu_units[i] for i in free[:size]], False
                    free = free[size:]
                plan.append((server.pk, whole, tuple(unit_ids), start, end, rng.choice(users).pk))
    rng.shuffle(plan)  # the first 1,000 are then spread over the year like the rest
    return plan


def insert_history(plan):
    """Write planned bookings with bulk_create: fixture data, the one place that bypasses the services."""
    from reservations.models import Allocation, Booking

    for offset in range(0, len(plan), CHUNK):
        chunk = plan[offset : offset + CHUNK]
        bookings = Booking.objects.bulk_create(
            Booking(user_id=user_id, purpose="history", start=start, end=end, server_id=server_id, whole_server=whole, source=Booking.Source.CLI)
            for server_id, whole, _, start, end, user_id in chunk
        )
        Allocation.objects.bulk_create(
            (
                Allocation(booking_id=booking.pk, unit_id=unit_id, start=start, end=end)
                for booking, (_, _, unit_ids, start, end, _) in zip(bookings, chunk)
                for unit_id in unit_ids
            ),
            batch_size=CHUNK,
        )
    analyze()


def analyze():
    """Fresh planner statistics and visibility maps after a bulk load, as autovacuum would give a real
    database; and so that autovacuum, woken by the load, does not run beside the measurements."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")


# --- measurements -----------------------------------------------------------------------


def random_devices(rng):
    return sorted(rng.sample(range(GPUS_PER_SERVER), rng.choice(SUBSET_SIZES)))


def enable_fair_use(servers, users):
    """Issue 9's rules in force: the members in a group with every kind of limit, the servers with pooled CPU and memory.

    The limits are generous, so every create passes them: the figure is what checking costs.
    """
    from reservations.models import Limit, MemberGroup, Profile, Server

    everyone = MemberGroup.objects.create(name="Everyone")
    students = MemberGroup.objects.create(name="Students", parent=everyone)
    for user in users:
        Profile.objects.update_or_create(user=user, defaults={"group": students})
    Limit.objects.create(group=students, kind=Limit.Kind.MAX_GPUS, number=64)
    Limit.objects.create(group=students, kind=Limit.Kind.GPU_HOURS_WEEK, number=100_000)
    Limit.objects.create(group=everyone, kind=Limit.Kind.MAX_LENGTH, duration="2d")
    Limit.objects.create(group=everyone, kind=Limit.Kind.MAX_AHEAD, duration="365d")
    Limit.objects.create(group=students, kind=Limit.Kind.MAX_GPUS, number=8, server=servers[0])
    Server.objects.filter(pk__in=[server.pk for server in servers]).update(cpu_cores=128, memory_gib=1024)
    for server in servers:
        server.refresh_from_db()


def measure_creates(servers, users, samples, first_start, rng, **amounts):
    """Time create_booking on random GPU subsets, each sample in its own future hour (no conflicts).

    `amounts` (cpu_cores, memory_gib) are asked with the GPUs, for the pooled capacities.
    """
    from reservations import services
    from reservations.parsing import format_device_set

    timings, created = [], []
    warmup = 20
    for i in range(warmup + samples):
        start = first_start + timedelta(hours=i)
        server, devices = rng.choice(servers), format_device_set(random_devices(rng))
        began = time.perf_counter()
        services.create_booking(
            rng.choice(users), start=start, end=start + timedelta(minutes=50), purpose="bench", server=server.name, devices=devices,
            **amounts,
        )
        elapsed = time.perf_counter() - began
        if i >= warmup:
            timings.append(elapsed)
            created.append((server.name, devices, start))
    return summarize(timings), created, first_start + timedelta(hours=warmup + samples)


def measure_conflicts(users, booked, count, rng):
    """Time a create that asks for units and a time someone already holds, and is refused."""
    from reservations import services
    from reservations.errors import BookingConflict

    timings = []
    for server_name, devices, start in rng.sample(booked, min(count, len(booked))):
        began = time.perf_counter()
        try:
            services.create_booking(
                rng.choice(users), start=start + timedelta(minutes=10), end=start + timedelta(hours=2), server=server_name, devices=devices
            )
        except BookingConflict:
            timings.append(time.perf_counter() - began)
        else:
            raise AssertionError(f"{server_name}:{devices} at {start} was not refused")
    return summarize(timings)


def measure_concurrent(servers, users, writers, seconds, window_start, seed):
    """Writers book random GPUs of any server at random hours of one week: they meet, some conflict."""
    from django.db import connection

    from reservations import services
    from reservations.errors import BookingConflict
    from reservations.parsing import format_device_set

    hours = 7 * 24  # 400 GPUs x one week: room for thousands of bookings, and some collide
    barrier = threading.Barrier(writers + 1)
    results = []
    lock = threading.Lock()

    def writer(number):
        rng = random.Random(seed * 1000 + number)
        user = users[number % len(users)]
        created = conflicts = errors = 0
        examples = []
        try:
            barrier.wait()
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                start = window_start + timedelta(hours=rng.randrange(hours))
                end = start + timedelta(hours=rng.randint(1, 4))
                try:
                    services.create_booking(
                        user, start=start, end=end, purpose="bench", source="api",
                        server=rng.choice(servers).name, devices=format_device_set(random_devices(rng)),
                    )
                    created += 1
                except BookingConflict:
                    conflicts += 1  # refused by the database constraint, then explained
                except Exception as error:  # a deadlock or lock timeout would land here: count it, go on
                    errors += 1
                    if len(examples) < 5:
                        examples.append(f"{type(error).__name__}: {error}"[:300])
        finally:
            connection.close()
            with lock:
                results.append((created, conflicts, errors, examples))

    threads = [threading.Thread(target=writer, args=(n,), name=f"writer-{n}") for n in range(writers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    created = sum(r[0] for r in results)
    conflicts = sum(r[1] for r in results)
    errors = sum(r[2] for r in results)
    return {
        "writers": writers,
        "seconds": round(elapsed, 2),
        "attempts": created + conflicts + errors,
        "created": created,
        "conflicts": conflicts,
        "errors": errors,
        "bookings_per_s": round(created / elapsed, 1),
        "attempts_per_s": round((created + conflicts + errors) / elapsed, 1),
        "error_examples": [example for r in results for example in r[3]][:5],
    }


def count_overlaps():
    """Active allocations that overlap an earlier one of the same unit, over the whole table (must be 0)."""
    from django.db import connection

    # Each row against the latest end among the unit's earlier rows: one sort, no self-join.
    sql = """
        SELECT count(*) FROM (
            SELECT "start", max("end") OVER (
                PARTITION BY unit_id ORDER BY "start", id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
            ) AS previous_end
            FROM reservations_allocation WHERE active
        ) AS ordered
        WHERE "start" < previous_end
    """
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def summarize(seconds):
    ms = sorted(s * 1000 for s in seconds)
    return {
        "samples": len(ms),
        "median_ms": round(statistics.median(ms), 3),
        "p95_ms": round(_percentile(ms, 95), 3),
        "p99_ms": round(_percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "min_ms": round(ms[0], 3),
        "max_ms": round(ms[-1], 3),
    }


def _percentile(ordered, p):
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, -(-p * len(ordered) // 100))
    return ordered[int(rank) - 1]


def database_context(vendor, args):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version" if vendor == "postgresql" else "SELECT sqlite_version()")
        version = cursor.fetchone()[0]
    from django.conf import settings

    context = {"vendor": vendor, "version": version, "name": args.db_name}
    if vendor == "postgresql":
        context["prepared_statements"] = settings.DATABASE_PREPARED_STATEMENTS
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'max_connections')")
            context["settings"] = dict(cursor.fetchall())
    if vendor == "sqlite":
        context["note"] = "run with --allow-sqlite: SQLite, not the PostgreSQL production uses"
    return context


def table_counts():
    from reservations.models import Allocation, Booking, Device, Server

    return {
        "servers": Server.objects.count(),
        "gpus": Device.objects.count(),
        "bookings": Booking.objects.count(),
        "allocations": Allocation.objects.count(),
    }


# --- main -------------------------------------------------------------------------------


def main():
    args = parse_args()
    began = time.perf_counter()
    vendor = point_at_bench_database(args)

    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    try:
        log(f"migrating the {vendor} database {args.db_name}")
        call_command("migrate", verbosity=0, interactive=False)
        rng = random.Random(args.seed)
        now = timezone.now().replace(minute=0, second=0, microsecond=0)

        log(f"creating {SERVERS} servers x {GPUS_PER_SERVER} GPUs and {USERS} users")
        servers, users = create_lab()
        plan = plan_history(servers, users, args.history, now, rng)

        log(f"inserting {FIRST_HISTORY} past bookings")
        insert_history(plan[:FIRST_HISTORY])
        future = now + timedelta(days=1)
        log(f"measuring {args.samples} creates at history={FIRST_HISTORY}")
        at_first, _, future = measure_creates(servers, users, args.samples, future, rng)

        log(f"inserting {len(plan) - FIRST_HISTORY} more past bookings")
        loaded = time.perf_counter()
        insert_history(plan[FIRST_HISTORY:])
        load_seconds = time.perf_counter() - loaded
        log(f"measuring {args.samples} creates at history={len(plan)}")
        at_full, booked, future = measure_creates(servers, users, args.samples, future + timedelta(days=1), rng)

        # Before the limits are on: a member asking again for 8 GPUs of the server with a limit of 8
        # (enable_fair_use) would be refused by that limit, not by the conflict measured here.
        log("measuring refused creates")
        conflict = measure_conflicts(users, booked, min(args.samples, 200), rng)

        log("fair use on: groups with limits, pooled CPU and memory")
        enable_fair_use(servers, users)
        log(f"measuring {args.samples} creates with limits and capacities checked")
        fair, _, future = measure_creates(servers, users, args.samples, future + timedelta(days=1), rng, cpu_cores=4, memory_gib=32)

        log(f"{args.writers} concurrent writers for {args.seconds:g} s")
        concurrent = measure_concurrent(servers, users, args.writers, args.seconds, future + timedelta(days=1), args.seed)
        log("checking that no two active allocations overlap")
        concurrent["overlaps"] = count_overlaps()

        result = {
            "benchmark": "labres booking writes",
            "database": database_context(vendor, args),
            "setup": {
                "servers": SERVERS,
                "gpus": SERVERS * GPUS_PER_SERVER,
                "users": USERS,
                "history_bookings": len(plan),
                "history_load_seconds": round(load_seconds, 1),
                "history_load_bookings_per_s": round((len(plan) - FIRST_HISTORY) / load_seconds),
            },
            "create": {
                "note": "one create_booking on a random GPU subset in a free future hour; warm-up excluded",
                f"history_{FIRST_HISTORY}": at_first,
                f"history_{len(plan)}": at_full,
                f"history_{len(plan)}_fair_use": {
                    "note": "members in a group with every kind of limit (all passed), 4 CPU cores and 32 GiB of each server's pools asked too; target: median <= 10 ms",
                    **fair,
                },
            },
            "conflict": {"note": "create_booking refused with BookingConflict", **conflict},
            "concurrent": concurrent,
            "final_counts": table_counts(),
            "context": run_context(args),
            "total_seconds": round(time.perf_counter() - began, 1),
        }
    finally:
        end_bench_database(vendor, args)
    print(json.dumps(result, indent=2))
    return 0 if concurrent["overlaps"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
