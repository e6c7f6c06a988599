"""Benchmark of the notification outbox: throughput, and what it adds to creating a booking; prints one JSON object.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test SECRET_KEY=x .venv/bin/python bench/notifications.py
    SECRET_KEY=x .venv/bin/python bench/notifications.py --allow-sqlite

Like bench/booking.py (whose database helpers it uses), it never touches the database DATABASE_URL
names: it creates labres_bench_notifications on the same server (or a SQLite file under var/ with
--allow-sqlite), migrates it, fills it and drops it at the end (--keep keeps it). The lab: 50 servers
x 8 GPUs, 5 members with an e-mail address, one Slack webhook destination per server, all pointing at
a local fake Slack (tests/notifications/fake_slack.py) over real HTTP; e-mail goes to Django's locmem
backend. What it measures:
  throughput  one outbox event per booking written as the receiver writes it (one transaction per
              booking), then expanded by expand_due() into --messages rows (render and write, one
              transaction per event: the owner's e-mail and the server's webhook; bookings two hours
              apart, so no "followed" messages), then sent by sweep(): webhook rows to the fake Slack,
              e-mail rows to locmem; then the webhook rows again with --sweepers sweeps at once,
              counting what the fake Slack received twice (must be 0)
  overhead    create_booking with the notifications receiver disconnected, connected (the event row
              written, not handed to a broker), and connected with the after-commit hand-over to a
              broker (Redis when REDIS_URL is set, else a folder broker in a temporary folder; a queue
              of its own, emptied at the end): median and p95
Progress goes to stderr. See bench/README.md.
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on the path, and its calendar.py hides the standard library's.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labres.settings")

from bench.booking import (  # noqa: E402
    GPUS_PER_SERVER,
    SUBSET_SIZES,
    create_lab,
    database_context,
    drop_bench_database,
    log,
    point_at_bench_database,
    run_context,
    summarize,
)

RECEIVER_UID = "labres-notify-bookings"
BENCH_QUEUE = "labres-bench-notifications"  # the hand-over's messages, never consumed; emptied at the end
VARIANTS = ["receiver_disconnected", "event_row", "event_row_and_hand_over"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="outbox rows queued and sent in the throughput part (default 2000)")
    parser.add_argument("--sweepers", type=int, default=4, help="concurrent sweeps in the throughput part's second round (default 4)")
    parser.add_argument("--samples", type=int, default=300, help="create_booking calls measured per variant (default 300)")
    parser.add_argument("--db-name", default="labres_bench_notifications", help="the throwaway database to create (default labres_bench_notifications)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    parser.add_argument("--allow-sqlite", action="store_true", help="run on SQLite too (a file under var/); not what production runs")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    args = parser.parse_args()
    if args.messages < 2 or args.messages % 2:
        parser.error("--messages must be an even number (each booking queues an e-mail and a webhook row)")
    if args.sweepers < 1 or args.samples < 1:
        parser.error("--sweepers and --samples must be at least 1")
    return args


# --- set-up ---------------------------------------------------------------------------------------


def add_webhooks(servers, fake_slack):
    """One incoming webhook per server, as staff would add them, each to its own path on the fake Slack."""
    from notifications.models import Destination

    Destination.objects.bulk_create(
        Destination(name=f"#{server.name}", kind="slack_webhook", webhook_url=fake_slack.webhook_url(f"T0/{server.name}/x"), server=server)
        for server in servers
    )


def receiver(connected):
    """Connect or disconnect the notifications app's receiver of booking changes."""
    from notifications import receivers
    from reservations.signals import booking_changed

    if connected:
        booking_changed.connect(receivers.on_booking_changed, dispatch_uid=RECEIVER_UID)
    else:
        booking_changed.disconnect(dispatch_uid=RECEIVER_UID)


class HandOver:
    """The after-commit hand-over, stubbed out or sent to a broker nobody consumes (a queue of the bench's own)."""

    def __init__(self):
        from notifications import outbox

        self.outbox = outbox
        self.real = outbox.hand_to_worker
        self.folder = None
        self.broker = None

    def off(self):
        self.outbox.hand_to_worker = lambda keys: None

    def on(self):
        self.outbox.hand_to_worker = self.real

    def to_bench_queue(self):
        """Route the deliver task to BENCH_QUEUE; without REDIS_URL, on a folder broker in a temporary folder."""
        from django.conf import settings

        from labres.celery import app

        app.conf.task_routes = {"notifications.tasks.deliver": {"queue": BENCH_QUEUE}}
        if settings.REDIS_URL:
            self.broker = "redis"
            return
        self.folder = Path(tempfile.mkdtemp(prefix="labres-bench-broker-"))
        (self.folder / "control").mkdir()
        app.conf.broker_url = "filesystem://"
        app.conf.broker_transport_options = {
            "data_folder_in": str(self.folder), "data_folder_out": str(self.folder),
            "control_folder": str(self.folder / "control"), "store_processed": False,
        }
        self.broker = "folder (temporary)"

    def waiting(self):
        """Messages the hand-over left in BENCH_QUEUE: one per create_booking that queued rows."""
        from labres.celery import app

        with app.connection_for_write() as connection:
            return connection.default_channel.queue_declare(queue=BENCH_QUEUE, passive=False).message_count

    def clean_up(self):
        """Empty the bench's queue on Redis; remove the temporary broker folder."""
        from labres.celery import app

        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        elif self.broker == "redis":
            with app.connection_for_write() as connection:
                connection.default_channel.queue_delete(BENCH_QUEUE)


def load_booking(pk):
    """The booking as the receiver loads it (owner, profile, units)."""
    from reservations.models import Booking

    return Booking.objects.select_related("user__profile", "server", "room").prefetch_related("allocations__unit__device").get(pk=pk)


def book_quietly(servers, users, count, first_start, rng):
    """`count` bookings, two hours apart, with the receiver disconnected (no events yet)."""
    from reservations import services
    from reservations.parsing import format_device_set

    bookings = []
    for i in range(count):
        start = first_start + timedelta(hours=2 * i)
        devices = format_device_set(sorted(rng.sample(range(GPUS_PER_SERVER), rng.choice(SUBSET_SIZES))))
        bookings.append(
            services.create_booking(rng.choice(users), start=start, end=start + timedelta(minutes=50), server=rng.choice(servers).name, devices=devices)
        )
    return bookings


# --- throughput -------------------------------------------------------------------------------------


def measure_render(bookings):
    """render() alone, per family: the e-mail (subject, text, HTML) for the owner, the Slack text and blocks for the webhook."""
    from notifications.messages import Occasion, overrides_for, render
    from notifications.models import Destination

    destinations = {d.server_id: d for d in Destination.objects.all()}
    overrides = overrides_for("created")
    rates = {}
    for family in ("email", "slack"):
        began = time.perf_counter()
        for booking in bookings:
            occasion = Occasion("created", booking=booking, by=booking.user)
            if family == "email":
                render(occasion, family, user=booking.user, overrides=overrides)
            else:
                render(occasion, family, destination=destinations[booking.server_id], overrides=overrides)
        seconds = time.perf_counter() - began
        rates[family] = {"rows": len(bookings), "seconds": round(seconds, 3), "rows_per_s": round(len(bookings) / seconds, 1)}
    return rates


def measure_record(bookings):
    """The receiver's event row for each booking in its own transaction (write and commit; hand-over stubbed)."""
    from django.db import transaction

    from notifications.receivers import on_booking_changed

    began = time.perf_counter()
    for booking in bookings:
        with transaction.atomic():
            on_booking_changed(None, booking=booking, event="created", by=booking.user)
    seconds = time.perf_counter() - began
    return {"events": len(bookings), "seconds": round(seconds, 3), "events_per_s": round(len(bookings) / seconds, 1)}


def measure_expand():
    """expand_due() until no event is due: claim, load, render, write the rows, mark expanded; one transaction per event."""
    from notifications import outbox
    from notifications.models import OutboxEvent

    events = OutboxEvent.objects.filter(state="pending").count()
    rows = 0
    began = time.perf_counter()
    while True:
        batch = outbox.expand_due()
        if not batch:
            break
        rows += len(batch)
    seconds = time.perf_counter() - began
    return {
        "events": events, "rows": rows, "seconds": round(seconds, 3), "events_per_s": round(events / seconds, 1),
        "rows_per_s": round(rows / seconds, 1), "ms_per_event": round(seconds * 1000 / max(events, 1), 3),
    }


def sweep_until_done(sweep):
    sent = 0
    while True:
        batch = sweep()
        if not batch:
            return sent
        sent += batch


def measure_sweep(channel):
    """sweep() over the rows of one channel (the others made not due meanwhile), until nothing is due."""
    from django.utils import timezone

    from notifications import outbox
    from notifications.models import Notification

    now = timezone.now()
    later = now + timedelta(days=1)
    Notification.objects.exclude(channel=channel).filter(state="pending").update(next_attempt_at=later)
    Notification.objects.filter(channel=channel, state="pending").update(next_attempt_at=now)
    began = time.perf_counter()
    sent = sweep_until_done(outbox.sweep)
    seconds = time.perf_counter() - began
    Notification.objects.filter(state="pending", next_attempt_at=later).update(next_attempt_at=now)
    return {"rows": sent, "seconds": round(seconds, 3), "rows_per_s": round(sent / seconds, 1)}


def measure_concurrent_sweeps(sweepers, fake_slack):
    """The webhook rows made due again and swept by `sweepers` threads at once; the fake Slack counts duplicates."""
    from django.db import connection
    from django.utils import timezone

    from notifications import outbox
    from notifications.models import Notification

    expected = Notification.objects.filter(channel="slack_webhook").update(state="pending", attempts=0, next_attempt_at=timezone.now(), sent_at=None)
    before = len(fake_slack.messages())
    barrier = threading.Barrier(sweepers + 1)
    counts, errors = [], []

    def sweeper():
        try:
            barrier.wait()
            counts.append(sweep_until_done(lambda: outbox.sweep(limit=100)))
        except Exception as error:  # reported in the output
            errors.append(f"{type(error).__name__}: {error}"[:300])
        finally:
            connection.close()

    threads = [threading.Thread(target=sweeper, name=f"sweeper-{n}") for n in range(sweepers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    received = [message["text"] for message in fake_slack.messages()[before:]]
    return {
        "sweepers": sweepers,
        "rows": expected,
        "sent": sum(counts),
        "seconds": round(seconds, 3),
        "rows_per_s": round(sum(counts) / seconds, 1),
        "received": len(received),
        "duplicates": len(received) - len(set(received)),
        "errors": errors[:5],
    }


# --- overhead on create_booking ---------------------------------------------------------------------


def measure_overhead(servers, users, samples, first_start, rng, hand_over):
    """create_booking under each variant, interleaved in a shuffled order so that drift hits all alike."""
    from reservations import services
    from reservations.parsing import format_device_set

    def setup(variant):
        receiver(variant != "receiver_disconnected")
        hand_over.on() if variant == "event_row_and_hand_over" else hand_over.off()

    timings = {variant: [] for variant in VARIANTS}
    warmup = 20
    slot = 0
    for i in range(warmup + samples):
        order = VARIANTS[:]
        rng.shuffle(order)
        for variant in order:
            setup(variant)
            start = first_start + timedelta(hours=slot)
            slot += 1
            devices = format_device_set(sorted(rng.sample(range(GPUS_PER_SERVER), rng.choice(SUBSET_SIZES))))
            server, user = rng.choice(servers), rng.choice(users)
            began = time.perf_counter()
            services.create_booking(user, start=start, end=start + timedelta(minutes=50), purpose="bench", server=server.name, devices=devices)
            elapsed = time.perf_counter() - began
            if i >= warmup:
                timings[variant].append(elapsed)
    receiver(True)
    hand_over.off()
    result = {variant: summarize(values) for variant, values in timings.items()}
    base = result["receiver_disconnected"]
    for variant in VARIANTS[1:]:
        result[f"{variant}_adds"] = {
            "median_ms": round(result[variant]["median_ms"] - base["median_ms"], 3),
            "p95_ms": round(result[variant]["p95_ms"] - base["p95_ms"], 3),
        }
    return result


def outbox_counts():
    from django.db.models import Count

    from notifications.models import Notification, OutboxEvent

    return {
        "events": dict(OutboxEvent.objects.values_list("state").annotate(n=Count("pk")).order_by("state")),
        "rows": dict(Notification.objects.values_list("state").annotate(n=Count("pk")).order_by("state")),
    }


# --- main ---------------------------------------------------------------------------------------------


def main():
    args = parse_args()
    began = time.perf_counter()
    vendor = point_at_bench_database(args)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from tests.notifications.fake_slack import FakeSlack

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    fake_slack = FakeSlack().start()
    hand_over = HandOver()
    hand_over.off()
    result = None
    try:
        log(f"migrating the {vendor} database {args.db_name}")
        call_command("migrate", verbosity=0, interactive=False)
        rng = random.Random(args.seed)
        servers, users = create_lab()
        add_webhooks(servers, fake_slack)
        future = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=1)

        count = args.messages // 2
        log(f"throughput: {count} bookings, each an event expanded into an e-mail and a webhook row")
        receiver(False)
        bookings = [load_booking(b.pk) for b in book_quietly(servers, users, count, future, rng)]
        receiver(True)
        render = measure_render(bookings)
        record = measure_record(bookings)
        log(f"  record: {record['events_per_s']} events/s")
        expand = measure_expand()
        log(f"  expand: {expand['events_per_s']} events/s, {expand['rows_per_s']} rows/s")
        webhook = measure_sweep("slack_webhook")
        log(f"  sweep to the fake Slack: {webhook['rows_per_s']} rows/s")
        email = measure_sweep("email")
        log(f"  sweep to locmem e-mail: {email['rows_per_s']} rows/s")
        log(f"  {args.sweepers} sweeps at once")
        concurrent = measure_concurrent_sweeps(args.sweepers, fake_slack)

        hand_over.to_bench_queue()
        log(f"overhead: {args.samples} create_booking calls per variant ({', '.join(VARIANTS)}), broker: {hand_over.broker}")
        overhead = measure_overhead(servers, users, args.samples, future + timedelta(days=count // 12 + 2), rng, hand_over)

        result = {
            "benchmark": "labres notification outbox",
            "database": database_context(vendor, args),
            "setup": {
                "servers": len(servers), "members": len(users), "webhook_destinations": len(servers),
                "slack": "local fake Slack over HTTP (tests/notifications/fake_slack.py)", "email_backend": "locmem",
            },
            "throughput": {
                "note": "created-booking messages: render is render() alone; record writes the receiver's event row and commits (one transaction per booking); expand claims each event, renders, writes its rows and commits; sweep claims and sends",
                "render": render,
                "record": record,
                "expand": expand,
                "sweep_webhook": webhook,
                "sweep_email": email,
                "sweep_webhook_concurrent": concurrent,
            },
            "overhead": {
                "note": "one create_booking (its event row; expanded later into the owner's e-mail + the server's webhook), warm-up excluded; *_adds is the variant minus receiver_disconnected",
                "broker": hand_over.broker,
                "messages_handed_over": hand_over.waiting(),
                **overhead,
            },
            "outbox_rows": outbox_counts(),
            "context": run_context(args),
            "total_seconds": round(time.perf_counter() - began, 1),
        }
    finally:
        fake_slack.stop()
        hand_over.clean_up()
        if args.keep:
            log(f"keeping the database {args.db_name}")
        else:
            log(f"dropping the database {args.db_name}")
            drop_bench_database(vendor, args)
    print(json.dumps(result, indent=2))
    return 0 if concurrent["duplicates"] == 0 and not concurrent["errors"] and webhook["rows"] == count and expand["rows"] == args.messages else 1


if __name__ == "__main__":
    sys.exit(main())
