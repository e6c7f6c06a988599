"""Benchmark of the Slack endpoint: time from a signed `/gpu status` to Slack's acknowledgement
over real HTTP (gunicorn); prints one JSON object on stdout.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test SECRET_KEY=x .venv/bin/python bench/slack.py

Like bench/api.py (whose gunicorn helpers it uses) it never touches the database DATABASE_URL
names: it creates labres_bench_slack on the same server, fills it with 50 servers x 8 GPUs and a
busy coming week, and drops it at the end (--keep keeps it). gunicorn runs with the embedded
broker (a folder in a temporary directory; REDIS_URL is not passed on), so the acknowledgement
includes handing the status command to a worker, as in production; no worker runs, and the
queued tasks are thrown away with the folder. Each request is signed as Slack signs it.
Reported: `ack` (POST to the acknowledgement, after a warm-up reported as `warmup`; the target:
p99 under 300 ms, Slack allows 3 s), and `answer` (building the status reply itself, in this process, as the worker does).
"""
import argparse
import http.client
import json
import os
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on the path: the repository root goes there instead, so that bench.* and the apps import.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labres.settings")

from bench.api import WEEK_PER_SERVER, free_port, stop_gunicorn  # noqa: E402
from bench.booking import (  # noqa: E402
    GPUS_PER_SERVER,
    SERVERS,
    add_database_options,
    create_lab,
    database_context,
    end_bench_database,
    log,
    point_at_bench_database,
    run_context,
    summarize,
)
from bench.pages import insert_bookings, plan_bookings  # noqa: E402

SECRET = "bench-signing-secret"
SLACK_USER = "UBENCH0001"
TARGET_P99_MS = 300.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="signed /gpu status requests timed (default 300)")
    parser.add_argument("--answers", type=int, default=50, help="status replies built in process (default 50)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    add_database_options(parser, "labres_bench_slack")
    return parser.parse_args()


def load_lab(now, rng):
    """50 servers x 8 GPUs, a busy coming week (some bookings running now), one member linked to Slack."""
    servers, users = create_lab()
    week = plan_bookings(servers, [], WEEK_PER_SERVER, 0, now - timedelta(hours=2), now + timedelta(days=7), users, rng)
    log(f"inserting {len(week)} bookings around the coming week")
    insert_bookings(week)
    profile = users[0].profile
    profile.slack_user_id = SLACK_USER
    profile.save()
    return users[0]


def start_gunicorn(args, vendor, var_dir):
    """As bench/api.py starts it, with the Slack signing secret and the embedded broker."""
    import subprocess

    from bench.api import database_url

    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in {"DEBUG", "REDIS_URL"}}
    env.update(DATABASE_URL=database_url(args, vendor), ALLOWED_HOSTS="127.0.0.1", LABRES_VAR_DIR=var_dir,
               SLACK_SIGNING_SECRET=SECRET, LOG_LEVEL="WARNING")
    command = [sys.executable, "-m", "gunicorn", "labres.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(args.workers), "--log-level", "warning"]
    log(f"starting gunicorn on 127.0.0.1:{port} with {args.workers} workers")
    process = subprocess.Popen(command, cwd=REPO, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {process.returncode}")
        try:
            status, _, _ = signed_status(port)
            if status == 200:
                return process, port
        except OSError:
            pass
        time.sleep(0.3)
    stop_gunicorn(process)
    raise RuntimeError("gunicorn did not answer within 60 s")


def signed_status(port):
    """(status, seconds, body) for one signed `/gpu status`, from sending to the whole answer."""
    from slack_sdk.signature import SignatureVerifier

    body = urlencode({
        "command": "/gpu", "text": "status", "user_id": SLACK_USER,
        "response_url": "https://hooks.slack.invalid/commands/T0/1/x",  # never called: no worker runs
    })
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=timestamp, body=body),
    }
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        began = time.perf_counter()
        connection.request("POST", "/slack/commands/", body=body.encode(), headers=headers)
        response = connection.getresponse()
        content = response.read()
        return response.status, time.perf_counter() - began, content
    finally:
        connection.close()


def measure_acks(port, count):
    timings, errors, acks = [], [], set()
    for _ in range(count):
        status, seconds, content = signed_status(port)
        timings.append(seconds)
        if status != 200:
            errors.append(f"{status}: {content[:200].decode(errors='replace')}")
        else:
            acks.add(json.loads(content).get("text", ""))
    return {**summarize(timings), "errors": len(errors), "first_errors": errors[:3], "answers": sorted(acks)}


def measure_answers(count):
    from notifications.slackbot import tasks

    timings, reply = [], None
    for _ in range(count):
        began = time.perf_counter()
        reply = tasks.run_command("status", SLACK_USER)
        timings.append(time.perf_counter() - began)
    return {**summarize(timings), "blocks": len(reply.blocks or []), "text_chars": len(reply.text)}


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
        now = timezone.now().replace(second=0, microsecond=0)
        load_lab(now, random.Random(args.seed))
        log(f"building the status reply {args.answers} times in process")
        answer = measure_answers(args.answers)
        connections.close_all()
        with tempfile.TemporaryDirectory(prefix="labres-bench-slack-") as var_dir:
            gunicorn, port = start_gunicorn(args, vendor, var_dir)
            warmup_count = 10 * args.workers
            log(f"warm-up: {warmup_count} requests (each gunicorn worker's first hand-off loads Celery and the broker transport)")
            warmup = measure_acks(port, warmup_count)
            log(f"timing {args.requests} signed /gpu status requests")
            ack = measure_acks(port, args.requests)
            stop_gunicorn(gunicorn)
            gunicorn = None
        result = {
            "benchmark": "labres Slack endpoint: /gpu status acknowledgement over HTTP",
            "database": database_context(vendor, args),
            "server": {"gunicorn_workers": args.workers, "debug": False, "broker": "embedded folder (no worker consumes it)"},
            "setup": {"servers": SERVERS, "gpus": SERVERS * GPUS_PER_SERVER, "coming_week_bookings_per_server": WEEK_PER_SERVER},
            "results": {"ack": ack, "warmup": warmup, "answer": answer},
            "targets": {"ack_p99_ms": {"target": TARGET_P99_MS, "measured": ack["p99_ms"], "met": ack["p99_ms"] < TARGET_P99_MS}},
            "context": run_context(args),
            "total_seconds": round(time.perf_counter() - began, 1),
        }
    finally:
        if gunicorn is not None:
            stop_gunicorn(gunicorn)
        end_bench_database(vendor, args)
    print(json.dumps(result, indent=2))
    return 0 if result["results"]["ack"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
