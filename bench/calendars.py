"""Benchmark of the calendar feeds: a feed of 1,000 bookings, and the 304 a polling calendar app gets; prints one JSON object.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test SECRET_KEY=x .venv/bin/python bench/calendars.py
    SECRET_KEY=x .venv/bin/python bench/calendars.py --allow-sqlite

Like bench/booking.py (whose database helpers it uses) it never touches the database DATABASE_URL
names: it creates labres_bench_calendar on the same server (or a SQLite file under var/ with
--allow-sqlite), migrates it, fills it and drops it at the end (--keep keeps it). The lab: 50 servers
x 8 GPUs, 2 rooms, 5 members, --history past bookings of the other members spread over a year (so
the feed's window is picked out of a long history), and 1,000 bookings of the member whose feeds are
fetched, in the coming weeks (GPU subsets, whole servers and rooms). Measured through Django's test
client (routing, middleware, the feed view, its queries and the text), after a warm-up:
  feed_200       GET of the member's own feed (1,000 events; target: median under 50 ms)
  feed_304       the same GET with the ETag it answered (If-None-Match; target: median under 5 ms)
  feed_304_date  the same with If-Modified-Since instead
  render_only    feeds.render alone: the query and the text, without the request around it
  server_feed_*  a server's feed (its share of the 1,000 plus history in the window), 200 and 304
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
from bench.pages import create_rooms, insert_bookings, plan_bookings  # noqa: E402

FEED_BOOKINGS = 1_000
FEED_SERVERS, FEED_ROOMS = 10, 2
PER_SERVER = 95  # 10 servers x 95 + 2 rooms x 25 = 1,000
PER_ROOM = 25
TARGET_200_MS, TARGET_304_MS = 50.0, 5.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100, help="timed GETs of each full feed (default 100)")
    parser.add_argument("--conditional", type=int, default=1000, help="timed conditional GETs (default 1000)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests first (default 5)")
    parser.add_argument("--history", type=int, default=100_000, help="past bookings of other members (default 100000)")
    add_database_options(parser, "labres_bench_calendar")
    return parser.parse_args()


def timed(call, count, warmup):
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(count):
        began = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - began)
    return summarize(seconds)


def measure_feed(client, feed, requests, conditional, warmup):
    """200, 304 by ETag and 304 by date for one feed; checks each answer is what it should be."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = f"/calendar/{feed.token}.ics"
    first = client.get(url)
    assert first.status_code == 200, first.status_code
    etag, modified = first["ETag"], first["Last-Modified"]

    def full():
        response = client.get(url)
        assert response.status_code == 200

    def by_etag():
        response = client.get(url, HTTP_IF_NONE_MATCH=etag)
        assert response.status_code == 304

    def by_date():
        response = client.get(url, HTTP_IF_MODIFIED_SINCE=modified)
        assert response.status_code == 304

    with CaptureQueriesContext(connection) as full_queries:
        full()
    with CaptureQueriesContext(connection) as conditional_queries:
        by_etag()
    return {
        "events": first.content.count(b"BEGIN:VEVENT"),
        "bytes": len(first.content),
        "queries_200": len(full_queries.captured_queries),
        "queries_304": len(conditional_queries.captured_queries),
        "get_200": timed(full, requests, warmup),
        "get_304_etag": timed(by_etag, conditional, warmup),
        "get_304_date": timed(by_date, conditional, warmup),
    }


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

    from reservations import feeds
    from reservations.models import CalendarFeed

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    result = None
    try:
        log(f"migrating the {vendor} database {args.db_name}")
        call_command("migrate", verbosity=0, interactive=False)
        rng = random.Random(args.seed)
        now = timezone.now().replace(minute=0, second=0, microsecond=0)
        servers, users = create_lab()
        rooms = create_rooms()[:FEED_ROOMS]
        member, others = users[0], users[1:]

        log(f"inserting {args.history} past bookings of other members")
        insert_history(plan_history(servers, others, args.history, now, rng))
        log(f"inserting {FEED_BOOKINGS} coming bookings of {member.username}")
        # After the history (which ends an hour ago), in the next eight weeks.
        plan = plan_bookings(servers[:FEED_SERVERS], rooms, PER_SERVER, PER_ROOM, now, now + timedelta(weeks=8), [member], rng)
        insert_bookings(plan)

        own = CalendarFeed.objects.create(user=member, scope=CalendarFeed.Scope.MINE)
        server_feed = CalendarFeed.objects.create(user=member, scope=CalendarFeed.Scope.SERVER, server=servers[0])
        client = Client()

        log("measuring the member's own feed")
        mine = measure_feed(client, own, args.requests, args.conditional, args.warmup)
        log("measuring render alone")
        found = feeds.find(own.token)
        render_only = timed(lambda: feeds.render(found, timezone.now(), "http://testserver/"), args.requests, args.warmup)
        log("measuring a server's feed")
        server = measure_feed(client, server_feed, args.requests, args.conditional, args.warmup)

        result = {
            "benchmark": "labres calendar feeds",
            "database": database_context(vendor, args),
            "setup": {
                "servers": SERVERS,
                "gpus": SERVERS * GPUS_PER_SERVER,
                "history_bookings": args.history,
                "member_bookings": len(plan),
                "note": "server time through Django's test client: routing, middleware, the feed view, its queries and the text",
            },
            "own_feed": mine,
            "render_only": render_only,
            "server_feed": server,
            "targets": {
                "feed_200_median_under_ms": TARGET_200_MS,
                "feed_200_met": mine["get_200"]["median_ms"] < TARGET_200_MS,
                "feed_304_median_under_ms": TARGET_304_MS,
                "feed_304_met": mine["get_304_etag"]["median_ms"] < TARGET_304_MS,
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
