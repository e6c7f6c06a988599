"""Benchmark of the member pages that read the most; prints one JSON object on stdout.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test SECRET_KEY=x .venv/bin/python bench/pages.py

Like bench/booking.py (whose database helpers it uses), it never touches the database
DATABASE_URL names: it creates labres_bench_pages on the same server, migrates it, fills it
and drops it at the end (--keep keeps it). It renders pages through Django's test client
with a signed-in member, so the times are the server's: URL routing, middleware, queries,
templates; no network, no browser.

Two sizes of lab, the second grown from the first:
  small   5 servers x 8 GPUs, 2 rooms,  2,180 bookings
  large  50 servers x 8 GPUs, 2 rooms, 20,000 bookings
Bookings are spread over 13 weeks (10 back, 3 ahead), so the current week holds about
1,500 of them at the large size. For each page: median and p95 over --requests requests
after warm-up, the number of SQL queries one request makes, and the response size.
Progress goes to stderr. See bench/README.md.
"""
import argparse
import json
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on the path: the repository root goes there instead, so that bench.* and the apps import.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labres.settings")

from bench.booking import (
    SLOT_PATTERNS,
    add_database_options,
    analyze,
    database_context,
    end_bench_database,
    log,
    point_at_bench_database,
    run_context,
    summarize,
)

GPUS_PER_SERVER = 8
SIZES = [("small", 5), ("large", 50)]  # name, servers
PER_SERVER = 396  # bookings per server over the whole span: about 30 a week
ROOMS = 2
ROOM_BOOKINGS = 200  # in the rooms, over the whole span; the large lab then holds 50 x 396 + 200 = 20,000
USERS = 20
WEEKS_BACK, WEEKS_AHEAD = 10, 3
CHUNK = 5_000
PAGES = [
    ("now", "/"),
    ("timeline_week", "/timeline/?view=week"),
    ("timeline_day", "/timeline/?view=day"),
    ("rooms", "/rooms/"),
    ("room_week", "/rooms/{room}/"),
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page and size (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests per page first (default 5)")
    add_database_options(parser, "labres_bench_pages")
    return parser.parse_args()


# --- fixtures ---------------------------------------------------------------------------


def create_users():
    from django.contrib.auth import get_user_model

    from reservations.models import Profile

    users = []
    for i in range(USERS):
        user = get_user_model()(username=f"bench{i}", email=f"bench{i}@lab.example.org", first_name="Member", last_name=f"{i:02d}")
        user.set_unusable_password()
        user.save()  # the post_save signal gives each a profile
        users.append(user)
    Profile.objects.filter(user__in=users[::3]).update(display_name="a display name")
    return users


def create_servers(first, count):
    """Servers node<first>..node<first+count-1> with 8 GPUs each, through the models (their save() makes the units)."""
    from reservations.models import Device, Server

    servers = []
    for s in range(first, first + count):
        server = Server.objects.create(name=f"node{s:02d}", hostname=f"node{s:02d}.lab.example.org", location=f"rack {s // 10}")
        for index in range(GPUS_PER_SERVER):
            Device.objects.create(server=server, index=index, model="NVIDIA A100-SXM4-80GB", memory_mib=81920)
        servers.append(server)
    return servers


def create_rooms():
    from reservations.models import Room

    return [Room.objects.create(name=f"Meeting room {n}", capacity=8, location=f"Building 1, room {n}") for n in range(1, ROOMS + 1)]


def plan_bookings(servers, rooms, per_server, per_room, span_start, span_end, users, rng):
    """Bookings as plain tuples (server id, room id, whole, unit ids, start, end, user id), no two overlapping on a unit.

    Each unit's span is cut into equal windows, one slot per window; the bookings of one
    slot hold disjoint units of a server (the patterns of bench/booking.py), so the per-unit
    non-overlap constraint accepts them all.
    """
    from reservations.models import Unit

    units = {}  # server id -> [server unit id, [gpu unit ids by index]]
    for unit in Unit.objects.filter(server__in=servers).select_related("device"):
        entry = units.setdefault(unit.server_id, [None, [None] * GPUS_PER_SERVER])
        if unit.kind == Unit.Kind.SERVER:
            entry[0] = unit.pk
        else:
            entry[1][unit.device.index] = unit.pk
    plan = []
    for server in servers:
        server_unit, gpu_units = units[server.pk]
        slots, count = [], 0
        while count < per_server:
            pattern = rng.choice(SLOT_PATTERNS)[: per_server - count]
            slots.append(pattern)
            count += len(pattern)
        for start, end, pattern in _slot_times(slots, span_start, span_end, rng):
            free = list(range(GPUS_PER_SERVER))
            rng.shuffle(free)
            for size in pattern:
                if size is None:
                    unit_ids, whole = (server_unit, *gpu_units), True
                else:
                    unit_ids, whole = tuple(gpu_units[i] for i in free[:size]), False
                    free = free[size:]
                plan.append((server.pk, None, whole, unit_ids, start, end, rng.choice(users).pk))
    room_units = dict(Unit.objects.filter(room__in=rooms).values_list("room_id", "pk"))
    for room in rooms:
        for start, end, _ in _slot_times([None] * per_room, span_start, span_end, rng, longest=timedelta(hours=3)):
            plan.append((None, room.pk, False, (room_units[room.pk],), start, end, rng.choice(users).pk))
    return plan


def _slot_times(slots, span_start, span_end, rng, longest=None):
    if not slots:
        return
    window = (span_end - span_start) / len(slots)
    for k, slot in enumerate(slots):
        start = span_start + k * window + window * rng.uniform(0, 0.2)
        length = window * rng.uniform(0.3, 0.75)
        if longest:
            length = min(length, longest)
        # Like people book: on half hours.
        start = start.replace(minute=start.minute // 30 * 30, second=0, microsecond=0)
        end = start + max(timedelta(minutes=30 * round(length / timedelta(minutes=30))), timedelta(minutes=30))
        yield start, end, slot


def insert_bookings(plan):
    """Write planned bookings with bulk_create: fixture data, the one place that bypasses the services."""
    from reservations.models import Allocation, Booking

    purposes = ["training resnet-50", "ablation sweep: learning rates", "LLM fine-tuning (LoRA)", "eval", "", "debugging the data loader"]
    for offset in range(0, len(plan), CHUNK):
        chunk = plan[offset : offset + CHUNK]
        bookings = Booking.objects.bulk_create(
            Booking(
                user_id=user_id, purpose=purposes[i % len(purposes)], start=start, end=end,
                server_id=server_id, room_id=room_id, whole_server=whole, source=Booking.Source.CLI,
            )
            for i, (server_id, room_id, whole, _, start, end, user_id) in enumerate(chunk)
        )
        Allocation.objects.bulk_create(
            (
                Allocation(booking_id=booking.pk, unit_id=unit_id, start=start, end=end)
                for booking, (_, _, _, unit_ids, start, end, _) in zip(bookings, chunk)
                for unit_id in unit_ids
            ),
            batch_size=CHUNK,
        )
    analyze()


# --- measurements -----------------------------------------------------------------------


def measure_pages(client, rooms, requests, warmup):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    results = {}
    for name, path in PAGES:
        url = path.format(room=rooms[0].pk)
        for _ in range(warmup):
            response = client.get(url)
        if response.status_code != 200:
            results[name] = {"url": url, "status": response.status_code, "note": "not measured: the page does not answer 200"}
            continue
        timings, cpu = [], []
        for _ in range(requests):
            began, began_cpu = time.perf_counter(), time.process_time()
            response = client.get(url)
            timings.append(time.perf_counter() - began)
            cpu.append(time.process_time() - began_cpu)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        stats = summarize(timings)
        # This process's CPU time alone (Python: Django, templates, row decoding); the wall
        # time adds the database and whatever else the machine is doing.
        stats["python_cpu_median_ms"] = summarize(cpu)["median_ms"]
        results[name] = {
            "url": url,
            "status": response.status_code,
            "queries": len(queries),
            "median_ms": stats["median_ms"],
            "p95_ms": stats["p95_ms"],
            "min_ms": stats["min_ms"],
            "max_ms": stats["max_ms"],
            "python_cpu_median_ms": stats["python_cpu_median_ms"],
            "kilobytes": round(len(response.content) / 1024, 1),
        }
        log(f"  {name}: median {stats['median_ms']:.1f} ms, p95 {stats['p95_ms']:.1f} ms, {len(queries)} queries")
    return results


def lab_counts(window_start, window_end):
    from django.utils import timezone

    from reservations.models import Allocation, Booking, Device, Room, Server

    now = timezone.now()
    return {
        "servers": Server.objects.count(),
        "gpus": Device.objects.count(),
        "rooms": Room.objects.count(),
        "bookings": Booking.objects.count(),
        "allocations": Allocation.objects.count(),
        "bookings_in_this_week": Booking.objects.filter(start__lt=window_end, end__gt=window_start).count(),
        "allocations_in_this_week": Allocation.objects.filter(start__lt=window_end, end__gt=window_start).count(),
        "bookings_running_now": Booking.objects.filter(start__lte=now, end__gt=now).count(),
    }


# --- main -------------------------------------------------------------------------------


def main():
    args = parse_args()
    began = time.perf_counter()
    vendor = point_at_bench_database(args)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from reservations.timeline import Window

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    result = None
    try:
        log(f"migrating the {vendor} database {args.db_name}")
        call_command("migrate", verbosity=0, interactive=False)
        rng = random.Random(args.seed)
        zone = timezone.get_default_timezone()
        week = Window.of("week", timezone.localdate(), zone)
        span_start = week.start - timedelta(weeks=WEEKS_BACK)
        span_end = week.end + timedelta(weeks=WEEKS_AHEAD - 1)
        users = create_users()
        rooms = create_rooms()
        client = Client()
        client.force_login(users[0])

        sizes, servers = {}, []
        for name, server_count in SIZES:
            new = create_servers(len(servers), server_count - len(servers))
            per_room = 0 if servers else ROOM_BOOKINGS // ROOMS  # the rooms' bookings come with the first size
            servers += new
            plan = plan_bookings(new, rooms, PER_SERVER, per_room, span_start, span_end, users, rng)
            log(f"{name}: {server_count} servers, inserting {len(plan)} more bookings")
            insert_bookings(plan)
            counts = lab_counts(week.start, week.end)
            log(f"{name}: {counts['bookings']} bookings, {counts['bookings_in_this_week']} in this week; measuring")
            sizes[name] = {"lab": counts, "pages": measure_pages(client, rooms, args.requests, args.warmup)}

        small, large = sizes["small"]["pages"], sizes["large"]["pages"]
        result = {
            "benchmark": "labres member pages",
            "database": database_context(vendor, args),
            "setup": {
                "gpus_per_server": GPUS_PER_SERVER,
                "users": USERS,
                "signed_in_as": users[0].username,
                "bookings_span": f"{WEEKS_BACK} weeks back to {WEEKS_AHEAD} weeks ahead of this week",
                "time_zone": str(zone),
                "requests_per_page": args.requests,
                "warmup_per_page": args.warmup,
                "note": "server time through Django's test client: routing, middleware, session, queries, templates",
            },
            "sizes": sizes,
            "query_count_constant": {
                name: small[name].get("queries") == large[name].get("queries") for name in small if "queries" in small[name]
            },
            "context": run_context(args),
            "total_seconds": round(time.perf_counter() - began, 1),
        }
    finally:
        end_bench_database(vendor, args)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
