"""Benchmark of the JSON API over real HTTP (gunicorn, PostgreSQL); prints one JSON object on stdout.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test SECRET_KEY=x .venv/bin/python bench/api.py

Like bench/booking.py (whose database helpers it uses), it never touches the database
DATABASE_URL names: it creates labres_bench_api on the same server, migrates it, fills it
and drops it at the end (--keep keeps it). The lab: 50 servers x 8 GPUs, a year of history
(100,000 bookings, as bench/booking.py makes it) and a busy coming week (as bench/pages.py
makes it). It then starts gunicorn on 127.0.0.1 (4 sync workers, DEBUG off, rate limits
off) and times, as one member with an API token, from 1 and from 16 client threads:
  create        POST bookings/ on a random GPU subset, each in a free future hour
  availability  GET availability/ for the next 7 days over every unit (400 GPUs, 50 servers)
  mine          GET bookings/?mine=1 (the first page of 50)
Each thread keeps its own connection (http.client); latencies are per request, from sending
it to reading the whole answer. Progress goes to stderr. See bench/README.md.
"""
import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

REPO = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on the path: the repository root goes there instead, so that bench.* and the apps import.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labres.settings")

from bench.booking import (  # noqa: E402
    GPUS_PER_SERVER,
    SERVERS,
    add_database_options,
    create_lab,
    database_context,
    end_bench_database,
    insert_history,
    log,
    plan_history,
    point_at_bench_database,
    run_context,
    summarize,
)
from bench.pages import insert_bookings, plan_bookings  # noqa: E402

WEEK_PER_SERVER = 30  # bookings per server in the coming week: a busy lab, as bench/pages.py has it
SUBSET_SIZES = [1, 1, 2, 2, 4, 8]
CREATE_FROM = timedelta(days=14)  # created bookings start after the coming week, one free hour each
TARGETS = {"create_p95_ms_at_1": 30.0, "availability_median_ms_at_1": 100.0}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history", type=int, default=100_000, help="past bookings (default 100000)")
    parser.add_argument("--creates", type=int, default=300, help="creates timed from one client (default 300)")
    parser.add_argument("--reads", type=int, default=100, help="reads of each kind timed from one client (default 100)")
    parser.add_argument("--threads", type=int, default=16, help="client threads of the concurrent runs (default 16)")
    parser.add_argument("--per-thread", type=int, default=20, help="requests of each kind per thread when concurrent (default 20)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    add_database_options(parser, "labres_bench_api")
    return parser.parse_args()


# --- the lab ----------------------------------------------------------------------------


def load_lab(args, now, rng):
    """50 servers x 8 GPUs, 5 users, a year of history and a busy coming week; one member's API token."""
    from reservations.models import ApiToken

    servers, users = create_lab()
    log(f"inserting {args.history} past bookings")
    insert_history(plan_history(servers, users, args.history, now, rng))
    week = plan_bookings(servers, [], WEEK_PER_SERVER, 0, now + timedelta(hours=1), now + timedelta(days=7), users, rng)
    log(f"inserting {len(week)} bookings in the coming week")
    insert_bookings(week)
    vacuum()
    _, key = ApiToken.issue(users[0], "bench")
    return servers, users[0], key


def vacuum():
    """What autovacuum would have done to a real database by now: the visibility map lets
    PostgreSQL count a member's bookings from an index alone."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE)")


def lab_counts(member, now):
    from reservations.models import Allocation, Booking, Device, Server

    return {
        "servers": Server.objects.count(),
        "gpus": Device.objects.count(),
        "bookings": Booking.objects.count(),
        "allocations": Allocation.objects.count(),
        "bookings_in_the_next_7_days": Booking.objects.filter(start__lt=now + timedelta(days=7), end__gt=now).count(),
        "member_bookings": Booking.objects.filter(user=member).count(),
    }


# --- gunicorn -----------------------------------------------------------------------------


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url(args, vendor):
    """DATABASE_URL for the benchmark database, for the gunicorn processes."""
    from django.conf import settings

    if vendor == "sqlite":
        return f"sqlite:///{settings.DATABASES['default']['NAME']}"
    return urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{args.db_name}").geturl()


def start_gunicorn(args, vendor, var_dir):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "DEBUG"}
    env.update(
        DATABASE_URL=database_url(args, vendor),
        ALLOWED_HOSTS="127.0.0.1",
        LABRES_VAR_DIR=var_dir,
        # Rate limits off: one member sends thousands of requests a minute here.
        API_THROTTLE_USER="",
        API_THROTTLE_ANON="",
        LOG_LEVEL="WARNING",
    )
    command = [sys.executable, "-m", "gunicorn", "-c", "python:labres.gunicorn_config", "labres.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(args.workers), "--log-level", "warning"]
    log(f"starting gunicorn on 127.0.0.1:{port} with {args.workers} workers")
    process = subprocess.Popen(command, cwd=REPO, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/api/schema/")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            pass
        time.sleep(0.3)
    stop_gunicorn(process)
    raise RuntimeError("gunicorn did not answer within 60 s")


def stop_gunicorn(process):
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- the client ---------------------------------------------------------------------------


class Client:
    """One connection (http.client reconnects by itself if the server closed it)."""

    def __init__(self, port, key):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Token {key}", "Accept": "application/json"}

    def request(self, method, path, body=None):
        """(status, seconds, bytes) for one request, the whole answer read."""
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        began = time.perf_counter()
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        content = response.read()
        elapsed = time.perf_counter() - began
        if response.getheader("Connection", "").lower() == "close":
            self.connection.close()
        return response.status, elapsed, content

    def close(self):
        self.connection.close()


class CreateSlots:
    """Future hours handed out one per create, so that no two creates ever meet."""

    def __init__(self, first, servers):
        self.next_hour = 0
        self.first = first
        self.servers = [server.name for server in servers]
        self.lock = threading.Lock()

    def payload(self, rng):
        with self.lock:
            hour = self.next_hour
            self.next_hour += 1
        devices = sorted(rng.sample(range(GPUS_PER_SERVER), rng.choice(SUBSET_SIZES)))
        start = self.first + timedelta(hours=hour)
        return {
            "server": rng.choice(self.servers),
            "devices": ",".join(str(index) for index in devices),
            "start": start.isoformat(),
            "duration": "50m",
            "purpose": "bench",
        }


def run(port, key, threads, per_thread, make_request, expected, seed):
    """Each of `threads` threads sends `per_thread` requests; per-request latency and overall throughput."""
    barrier = threading.Barrier(threads + 1)
    timings, failures, lock = [], [], threading.Lock()

    def worker(number):
        rng = random.Random(seed * 1000 + number)
        client = Client(port, key)
        mine, bad = [], []
        try:
            barrier.wait()
            for _ in range(per_thread):
                status, elapsed, content = client.request(*make_request(rng))
                mine.append(elapsed)
                if status != expected:
                    bad.append(f"{status}: {content[:200].decode(errors='replace')}")
        finally:
            client.close()
            with lock:
                timings.extend(mine)
                failures.extend(bad)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in workers:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - began
    result = {"threads": threads, "requests": len(timings), **summarize(timings), "requests_per_s": round(len(timings) / elapsed, 1)}
    result["errors"] = len(failures)
    if failures:
        result["error_examples"] = failures[:3]
    return result


def measure(port, key, servers, now, args):
    slots = CreateSlots(now + CREATE_FROM, servers)
    window = urlencode({"start": now.isoformat(), "end": (now + timedelta(days=7)).isoformat()})
    kinds = {
        "create": (lambda rng: ("POST", "/api/v1/bookings/", slots.payload(rng)), 201, args.creates),
        "availability": (lambda rng: ("GET", f"/api/v1/availability/?{window}"), 200, args.reads),
        "mine": (lambda rng: ("GET", "/api/v1/bookings/?mine=1"), 200, args.reads),
    }
    results = {}
    for name, (make_request, expected, sequential) in kinds.items():
        log(f"{name}: warm-up, then {sequential} requests from 1 thread, {args.threads} x {args.per_thread} from {args.threads}")
        run(port, key, 1, 10, make_request, expected, args.seed + 99)  # warm every code path and connection
        results[name] = {
            "at_1": run(port, key, 1, sequential, make_request, expected, args.seed),
            f"at_{args.threads}": run(port, key, args.threads, args.per_thread, make_request, expected, args.seed + 1),
        }
    return results, window


def availability_answer(port, key, window):
    """What one availability answer holds: units, busy entries, size."""
    status, elapsed, content = Client(port, key).request("GET", f"/api/v1/availability/?{window}")
    body = json.loads(content)
    return {
        "status": status,
        "units": len(body["units"]),
        "busy_entries": sum(len(unit["busy"]) for unit in body["units"]),
        "kilobytes": round(len(content) / 1024, 1),
    }


# --- main -------------------------------------------------------------------------------


def main():
    args = parse_args()
    began = time.perf_counter()
    vendor = point_at_bench_database(args)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone

    result, gunicorn = None, None
    try:
        log(f"migrating the {vendor} database {args.db_name}")
        call_command("migrate", verbosity=0, interactive=False)
        rng = random.Random(args.seed)
        now = timezone.now().replace(minute=0, second=0, microsecond=0)
        servers, member, key = load_lab(args, now, rng)
        counts = lab_counts(member, now)
        connections.close_all()
        with tempfile.TemporaryDirectory(prefix="labres-bench-api-") as var_dir:
            gunicorn, port = start_gunicorn(args, vendor, var_dir)
            results, window = measure(port, key, servers, now, args)
            answer = availability_answer(port, key, window)
            stop_gunicorn(gunicorn)
            gunicorn = None
        at_1 = {name: kind["at_1"] for name, kind in results.items()}
        result = {
            "benchmark": "labres JSON API over HTTP",
            "database": database_context(vendor, args),
            "server": {
                "gunicorn_workers": args.workers,
                "worker_class": "sync (closes each connection; the client reconnects on loopback)",
                "debug": False,
                "rate_limits": "off (API_THROTTLE_USER and API_THROTTLE_ANON empty)",
            },
            "setup": {
                "servers": SERVERS,
                "gpus": SERVERS * GPUS_PER_SERVER,
                "history_bookings": args.history,
                "coming_week_bookings_per_server": WEEK_PER_SERVER,
                "as_member": member.username,
                "lab": counts,
                "availability_answer": answer,
            },
            "results": results,
            "targets": {
                "create_p95_ms_at_1": {"target": TARGETS["create_p95_ms_at_1"], "measured": at_1["create"]["p95_ms"],
                                       "met": at_1["create"]["p95_ms"] < TARGETS["create_p95_ms_at_1"]},
                "availability_median_ms_at_1": {"target": TARGETS["availability_median_ms_at_1"], "measured": at_1["availability"]["median_ms"],
                                                "met": at_1["availability"]["median_ms"] < TARGETS["availability_median_ms_at_1"]},
            },
            "context": run_context(args),
            "total_seconds": round(time.perf_counter() - began, 1),
        }
    finally:
        if gunicorn is not None:
            stop_gunicorn(gunicorn)
        end_bench_database(vendor, args)
    print(json.dumps(result, indent=2))
    errors = sum(kind[run_name]["errors"] for kind in result["results"].values() for run_name in kind)
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
