"""Benchmark of each SQL query in reservations/queries.py against its ORM twin; prints one JSON object on stdout.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test SECRET_KEY=x .venv/bin/python bench/queries.py

Like bench/booking.py (whose lab and history it loads) it creates its own database,
labres_bench_queries, and drops it at the end. Each query and its `_orm` twin are called with
the same arguments, one after the other in a random order, `--calls` times, inside a transaction
as the services call them: both see the same load of a shared machine. A twin that is not
measurably slower means the SQL should go (see the module docstring of reservations/queries.py).
Progress goes to stderr. See bench/README.md.
"""
import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on the path: the repository root goes there instead, so that bench.* and the apps import.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labres.settings")

from bench.booking import (  # noqa: E402
    GPUS_PER_SERVER,
    add_database_options,
    create_lab,
    database_context,
    end_bench_database,
    enable_fair_use,
    insert_history,
    log,
    plan_history,
    point_at_bench_database,
    random_devices,
    run_context,
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls of each query and of its twin (default 2000)")
    parser.add_argument("--history", type=int, default=20_000, help="past bookings (default 20000)")
    add_database_options(parser, "labres_bench_queries")
    return parser.parse_args()


def cases(servers, users, now, rng):
    """Per query: a function giving the next call's arguments, and whether the call writes (then rolled back)."""
    from reservations.models import CalendarFeed, Unit

    gpu_units = {}
    for unit in Unit.objects.filter(kind=Unit.Kind.GPU).select_related("device"):
        gpu_units[(unit.server_id, unit.device.index)] = unit

    def moment():
        return now - timedelta(days=rng.uniform(1, 300))

    def units_args():
        server = rng.choice(servers)
        return (server.name if rng.random() < 0.5 else server, random_devices(rng) if rng.random() < 0.8 else None)

    def holds_args():
        start = moment().timestamp()
        return (rng.choice(users), start - 7 * 86400, start + 3600 + 7 * 86400, None)

    def shares_args():
        start = moment()
        return (rng.choice(servers), start, start + timedelta(hours=1), None)

    def insert_args():
        # Far in the future, and rolled back: no overlap with anything, whichever variant runs first.
        server, start = rng.choice(servers), now + timedelta(days=rng.uniform(400, 800))
        return (rng.choice(users), server, start, [gpu_units[(server.pk, i)] for i in random_devices(rng)])

    feeds = [CalendarFeed.objects.create(user=user, scope=CalendarFeed.Scope.MINE) for user in users]
    feeds += [CalendarFeed.objects.create(user=users[0], scope=CalendarFeed.Scope.SERVER, server=server) for server in servers[:5]]

    def feed_args():
        return (rng.choice(feeds), now - timedelta(days=90), now - timedelta(days=7))

    def selector_args():
        return (rng.choice(feeds).selector,)

    return {
        "reservations.queries.server_units": (units_args, False),
        "reservations.queries.member_holds": (holds_args, False),
        "reservations.queries.server_shares": (shares_args, False),
        "labres.db.insert": (insert_args, True),
        "reservations.queries.feed_counts": (feed_args, False),
        "reservations.queries.active_feed": (selector_args, False),
    }


def call_insert(function, user, server, start, units):
    """What create_booking writes: the booking, then its allocations."""
    from reservations.models import Allocation, Booking

    booking = Booking(user=user, purpose="bench", start=start, end=start + timedelta(hours=1), server=server)
    function([booking])
    function([Allocation(booking=booking, unit=unit, start=booking.start, end=booking.end) for unit in units])


def measure(name, make_args, writes, calls, rng):
    from importlib import import_module

    from django.db import transaction

    module, function = name.rsplit(".", 1)
    module = import_module(module)
    variants = {"sql": getattr(module, function), "orm": getattr(module, f"{function}_orm")}
    timings = {"sql": [], "orm": []}
    for i in range(calls + 20):
        args = make_args()
        order = list(variants)
        rng.shuffle(order)
        for variant in order:
            function = variants[variant]
            with transaction.atomic():
                began = time.perf_counter()
                if writes:
                    call_insert(function, *args)
                else:
                    function(*args)
                elapsed = time.perf_counter() - began
                if writes:
                    transaction.set_rollback(True)
            if i >= 20:  # the first calls prepare the statements
                timings[variant].append(elapsed)
    result = {}
    for variant, seconds in timings.items():
        us = sorted(s * 1e6 for s in seconds)
        result[variant] = {"median_us": round(statistics.median(us), 1), "p95_us": round(us[int(len(us) * 0.95)], 1), "min_us": round(us[0], 1)}
    result["orm_over_sql"] = round(result["orm"]["median_us"] / result["sql"]["median_us"], 2)
    return result


def main():
    args = parse_args()
    began = time.perf_counter()
    vendor = point_at_bench_database(args)

    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    result = None
    try:
        log(f"migrating the {vendor} database {args.db_name}")
        call_command("migrate", verbosity=0, interactive=False)
        rng = random.Random(args.seed)
        now = timezone.now().replace(minute=0, second=0, microsecond=0)
        servers, users = create_lab()
        log(f"inserting {args.history} past bookings")
        insert_history(plan_history(servers, users, args.history, now, rng))
        enable_fair_use(servers, users)
        results = {}
        for name, (make_args, writes) in cases(servers, users, now, rng).items():
            log(f"{name}: {args.calls} calls of the SQL and of the ORM twin, interleaved")
            results[name] = measure(name, make_args, writes, args.calls, rng)
        result = {
            "benchmark": "labres SQL queries against their ORM twins",
            "database": database_context(vendor, args),
            "setup": {"servers": len(servers), "gpus": len(servers) * GPUS_PER_SERVER, "users": len(users), "history": args.history},
            "results": results,
            "context": run_context(args),
            "total_seconds": round(time.perf_counter() - began, 1),
        }
    finally:
        end_bench_database(vendor, args)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
