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
  burst       the embedded default end to end (run it with --allow-sqlite and no REDIS_URL: SQLite and
              the folder broker): a real worker as the demo runs it (prefork, --concurrency 2), --writers
              threads booking for --burst-seconds through the service layer (each booking's event handed
              to the broker after commit, as in production), while the bench sends beat's minute and
              half-minute tasks the way beat does (same queue, same expiry, same intervals: every entry at once
              when the burst starts, as a beat just started, then each at its own interval).
              Reports bookings/s, messages delivered/s and their delay, and for each periodic task how
              long after sending it ran, or that it expired in the queue
  kill        the delivery guarantee under a worker killed mid-delivery: --kill-rounds times, --kill-bookings
              bookings each with one webhook message, the fake Slack answering --slow seconds late (it
              has the message at once), a real worker killed (SIGKILL, its whole process group) after a
              random number of posts; then the sweep as it runs once the lease is over. Reports messages
              lost (must be 0) and repeated
Progress goes to stderr. See bench/README.md.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
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
    SUBSET_SIZES,
    add_database_options,
    create_lab,
    database_context,
    end_bench_database,
    log,
    point_at_bench_database,
    run_context,
    summarize,
)

RECEIVER_UID = "labres-notify-bookings"
BENCH_QUEUE = "labres-bench-notifications"  # the hand-over's messages, never consumed; emptied at the end
VARIANTS = ["receiver_disconnected", "event_row", "event_row_and_hand_over"]
PARTS = ["throughput", "burst", "kill", "overhead"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="outbox rows queued and sent in the throughput part (default 2000)")
    parser.add_argument("--sweepers", type=int, default=4, help="concurrent sweeps in the throughput part's second round (default 4)")
    parser.add_argument("--samples", type=int, default=300, help="create_booking calls measured per variant (default 300)")
    add_database_options(parser, "labres_bench_notifications")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"which parts to run, comma-separated (default {','.join(PARTS)})")
    parser.add_argument("--writers", type=int, default=20, help="burst: threads booking at once (default 20)")
    parser.add_argument("--burst-seconds", type=float, default=30, help="burst: how long they book (default 30)")
    parser.add_argument("--drain-timeout", type=float, default=600, help="burst: how long to wait for the last message after the burst (default 600)")
    parser.add_argument("--concurrency", type=int, default=2, help="burst and kill: the worker's processes (default 2, as Procfile.demo)")
    parser.add_argument("--kill-rounds", type=int, default=5, help="kill: workers killed (default 5)")
    parser.add_argument("--kill-bookings", type=int, default=10, help="kill: bookings per round (default 10)")
    parser.add_argument("--slow", type=float, default=4, help="kill: seconds the fake Slack takes to answer (default 4)")
    args = parser.parse_args()
    args.parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    if set(args.parts) - set(PARTS):
        parser.error(f"--parts: unknown {', '.join(sorted(set(args.parts) - set(PARTS)))}; choose among {', '.join(PARTS)}")
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
        self.real = outbox.deliver_after_commit
        self.folder = None
        self.broker = None

    def off(self):
        self.outbox.deliver_after_commit = lambda keys: None

    def on(self):
        self.outbox.deliver_after_commit = self.real

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


# --- the embedded default under a burst, and a worker killed mid-delivery -----------------------------


def portal_queues():
    """The queues a portal worker consumes: the default one, and beat's own where the settings have one."""
    from django.conf import settings

    return [name for name in ("celery", getattr(settings, "PERIODIC_QUEUE", None)) if name]


class Broker:
    """The broker a real worker and this process share: Redis when REDIS_URL is set (its queues
    emptied before and after), else a folder broker in a temporary LABRES_VAR_DIR of the worker's."""

    def __init__(self):
        from django.conf import settings

        from labres.celery import app

        self.app = app
        self.var_dir = Path(tempfile.mkdtemp(prefix="labres-bench-var-"))
        self.kind = "redis" if settings.REDIS_URL else "folder"
        self.saved = app.conf.broker_url, dict(app.conf.broker_transport_options or {}), app.conf.task_routes
        app.conf.task_routes = None
        if self.kind == "folder":
            folders = {"data_folder_in": self.var_dir / "celery" / "broker", "control_folder": self.var_dir / "celery" / "control"}
            for folder in folders.values():
                folder.mkdir(parents=True)
            app.conf.broker_url = "filesystem://"
            app.conf.broker_transport_options = {
                **settings.CELERY_BROKER_TRANSPORT_OPTIONS, **{k: str(v) for k, v in folders.items()},
                "data_folder_out": str(folders["data_folder_in"]),
            }
        self.purge()
        self.options = {k: v for k, v in app.conf.broker_transport_options.items() if not k.startswith(("data_", "control"))}

    def waiting(self):
        with self.app.connection_for_write() as connection:
            return {queue: connection.default_channel.queue_declare(queue=queue, passive=False).message_count for queue in portal_queues()}

    def purge(self):
        with self.app.connection_for_write() as connection:
            for queue in portal_queues():
                connection.default_channel.queue_purge(queue)

    def close(self):
        if self.kind == "redis":
            self.purge()
        self.app.conf.broker_url, self.app.conf.broker_transport_options, self.app.conf.task_routes = self.saved
        shutil.rmtree(self.var_dir, ignore_errors=True)


def worker_database_url():
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    from urllib.parse import quote

    credentials = quote(db["USER"] or "", safe="") + (":" + quote(db["PASSWORD"], safe="") if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """`celery -A labres worker` as Procfile.demo starts it, in its own process group; each line it
    prints is kept with the time this process read it."""

    def __init__(self, broker, concurrency):
        command = [sys.executable, "-m", "celery", "-A", "labres", "worker", "--loglevel", "INFO", "--concurrency", str(concurrency),
                   "--without-gossip", "--without-mingle"]
        env = dict(os.environ, DATABASE_URL=worker_database_url(), LABRES_VAR_DIR=str(broker.var_dir), PYTHONPATH=str(REPO))
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 60
        while not any(" ready." in line for _, line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the worker did not start:\n" + "".join(line for _, line in self.lines)[-3000:])
            time.sleep(0.1)

    def _read(self):
        for line in self.process.stdout:
            self.lines.append((time.time(), line))

    def kill(self):
        """SIGKILL to the worker and its pool processes at once: no warm shutdown, nothing marked sent."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


def send_like_beat(entry):
    """One of beat's entries sent as beat sends it (its queue and expiry); returns the task id."""
    from django.conf import settings

    from labres.celery import app

    schedule = settings.CELERY_BEAT_SCHEDULE[entry]
    return app.send_task(schedule["task"], **schedule.get("options", {})).id


def periodic_report(sent, worker):
    """For each probed entry: sent, ran (and how many seconds after it was sent), expired in the queue."""
    from django.conf import settings

    done, expired = {}, set()
    for at, line in worker.lines:
        if "succeeded in" in line or "Discarding revoked task" in line:
            task_id = line.split("[")[-1].split("]")[0] if "Discarding" in line else line.split("] succeeded")[0].rsplit("[", 1)[-1]
            (expired.add(task_id) if "Discarding" in line else done.setdefault(task_id, at))
    report = {}
    for entry in sorted({name for name, _, _ in sent}):
        mine = [(task_id, at) for name, task_id, at in sent if name == entry]
        delays = sorted(done[task_id] - at for task_id, at in mine if task_id in done)
        limit = settings.CELERY_BEAT_SCHEDULE[entry]["options"].get("expires")
        report[entry] = {
            "sent": len(mine), "ran": len(delays), "expired": sum(task_id in expired for task_id, _ in mine),
            "never_ran": sum(task_id not in done and task_id not in expired for task_id, _ in mine),
            "expires_s": limit, "median_s": round(delays[len(delays) // 2], 2) if delays else None, "max_s": round(delays[-1], 2) if delays else None,
        }
    return report


def measure_burst(args, servers, users, hand_over):
    """The embedded default end to end: see the module's docstring."""
    from django.db.models import Max, Min
    from django.utils import timezone

    from bench.booking import measure_concurrent
    from labres.celery import wait_for_hand_overs
    from notifications.models import Notification, OutboxEvent

    broker = Broker()
    hand_over.on()
    worker = Worker(broker, args.concurrency)
    sent, backlog, stop = [], [], threading.Event()

    def beat():
        """Beat's schedule, every entry of it: due at once, then each at its interval."""
        from django.conf import settings

        due = {entry: time.monotonic() for entry in settings.CELERY_BEAT_SCHEDULE}
        while not stop.is_set():
            for entry, at in due.items():
                if at <= time.monotonic():
                    sent.append((entry, send_like_beat(entry), time.time()))
                    due[entry] = at + settings.CELERY_BEAT_SCHEDULE[entry]["schedule"].total_seconds()
            backlog.append(sum(broker.waiting().values()))
            stop.wait(0.5)

    prober = threading.Thread(target=beat, daemon=True)
    try:
        window = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=150)  # a free week, within a year
        log(f"burst: {args.writers} writers for {args.burst_seconds:g} s, {broker.kind} broker, worker --concurrency {args.concurrency}")
        began = time.time()
        prober.start()
        writes = measure_concurrent(servers, users, args.writers, args.burst_seconds, window, args.seed)
        burst_end = time.time()
        log(f"  {writes['bookings_per_s']} bookings/s; waiting for the last message")
        wait_for_hand_overs(timeout=30)
        unsent = OutboxEvent.objects.exclude(state="expanded").count() + Notification.objects.exclude(state="sent").count()
        deadline = time.monotonic() + args.drain_timeout
        while unsent and time.monotonic() < deadline:
            time.sleep(1)
            unsent = OutboxEvent.objects.exclude(state__in=["expanded", "failed"]).count() + Notification.objects.filter(state__in=["pending", "sending"]).count()
        drained = time.time()
        stop.set()
        prober.join()
        time.sleep(2)  # the last probes' answers
        rows = Notification.objects.filter(state="sent", booking__created_at__gte=datetime_from(began))
        span = rows.aggregate(first=Min("sent_at"), last=Max("sent_at"))
        lags = sorted((sent_at - created).total_seconds() for sent_at, created in rows.values_list("sent_at", "booking__created_at"))
        delivered = len(lags)
        seconds = (span["last"] - datetime_from(began)).total_seconds() if delivered else 0
        return {
            "note": "bookings through the service layer from --writers threads; each booking's messages (owner's e-mail to files, server's webhook to the fake Slack) delivered by the worker; periodic: beat's schedule sent as beat sends it, from the burst's start until every message was sent; *_s: from sent to done",
            "broker": broker.kind, "broker_options": broker.options, "worker_concurrency": args.concurrency,
            "writes": writes,
            "messages": {
                "delivered": delivered, "not_delivered": unsent,
                "per_s": round(delivered / seconds, 1) if seconds else None,
                "last_after_burst_s": round(drained - burst_end, 1),
                "delay_after_booking_s": {"median": round(lags[len(lags) // 2], 2), "p95": round(lags[int(len(lags) * 0.95)], 2), "max": round(lags[-1], 2)} if lags else None,
            },
            "max_tasks_waiting": max(backlog, default=0),
            "periodic": periodic_report(sent, worker),
        }
    finally:
        stop.set()
        hand_over.off()
        worker.stop()
        broker.close()


def datetime_from(epoch):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, tz=UTC)


def measure_kill(args, servers, users, fake_slack, hand_over, rng):
    """A worker killed mid-delivery, --kill-rounds times: what Slack got, per booking."""
    import re

    from django.utils import timezone

    from notifications import outbox
    from notifications.events import EVENTS
    from notifications.models import Destination, Notification, OutboxEvent, Preference
    from reservations import services

    Preference.objects.bulk_create([Preference(user=user, event=event, channels=[]) for user in users for event in EVENTS], ignore_conflicts=True)
    server = servers[0]
    Destination.objects.filter(server=server).update(webhook_url=fake_slack.webhook_url("T0/killed/x"))
    Destination.objects.exclude(server=server).update(active=False)
    broker = Broker()
    start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=170)
    rounds = []
    try:
        for round_number in range(args.kill_rounds):
            fake_slack.delay = args.slow
            before = len(fake_slack.calls("webhook"))
            hand_over.off()  # booked first; handed over below, so that the worker finds them all waiting
            bookings = []
            for i in range(args.kill_bookings):
                at = start + timedelta(hours=round_number * args.kill_bookings + i)
                bookings.append(services.create_booking(users[0], start=at, end=at + timedelta(minutes=50), server=server.name, devices="0", purpose="bench"))
            for booking in bookings:  # one deliver task per booking, as after each commit
                hand_over.real(list(OutboxEvent.objects.filter(booking=booking).values_list("key", flat=True)))
            worker = Worker(broker, args.concurrency)
            kill_after = rng.randint(1, args.kill_bookings - 1)
            deadline = time.monotonic() + args.slow * args.kill_bookings + 30
            while len(fake_slack.calls("webhook")) - before < kill_after and time.monotonic() < deadline:
                time.sleep(0.05)
            worker.kill()
            fake_slack.delay = 0
            in_flight = Notification.objects.filter(state="sending", booking__in=bookings).count()
            sent_before = Notification.objects.filter(state="sent", booking__in=bookings).count()
            lease_end = max([timezone.now(), *Notification.objects.filter(state="sending").values_list("next_attempt_at", flat=True)])
            while outbox.sweep(now=lease_end):  # the sweep once the lease is over (beat's, every 30 s)
                pass
            got = [int(re.search(r"Booking #(\d+)", message["text"]).group(1)) for message in fake_slack.messages()[before:]]
            expected = {booking.pk for booking in bookings}
            rounds.append({
                "posts_before_kill": kill_after, "marked_sent_before_kill": sent_before, "in_flight_at_kill": in_flight,
                "received": len(got), "lost": len(expected - set(got)), "repeated": len(got) - len(set(got)),
            })
            log(f"  kill round {round_number + 1}: {rounds[-1]}")
            broker.purge()
    finally:
        hand_over.off()
        fake_slack.delay = 0
        broker.close()
    messages = args.kill_rounds * args.kill_bookings
    repeated = sum(r["repeated"] for r in rounds)
    return {
        "note": "each round: bookings with one webhook message each, the fake Slack answering --slow s late, a real worker SIGKILLed after a random number of posts, then the sweep after the lease; repeated = messages Slack got twice",
        "worker_concurrency": args.concurrency, "slack_answers_after_s": args.slow,
        "messages": messages, "lost": sum(r["lost"] for r in rounds), "repeated": repeated,
        "repeated_per_kill_max": max(r["repeated"] for r in rounds), "repeated_rate": round(repeated / messages, 3),
        "rounds": rounds,
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
    failures = []
    try:
        log(f"migrating the {vendor} database {args.db_name}")
        call_command("migrate", verbosity=0, interactive=False)
        rng = random.Random(args.seed)
        servers, users = create_lab()
        add_webhooks(servers, fake_slack)
        future = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
        result = {
            "benchmark": "labres notification outbox",
            "database": database_context(vendor, args),
            "setup": {
                "servers": len(servers), "members": len(users), "webhook_destinations": len(servers),
                "slack": "local fake Slack over HTTP (tests/notifications/fake_slack.py)", "email_backend": "locmem in this process; the worker's own (files under its var/) in burst",
            },
        }
        count = args.messages // 2
        if "throughput" in args.parts:
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
            result["throughput"] = {
                "note": "created-booking messages: render is render() alone; record writes the receiver's event row and commits (one transaction per booking); expand claims each event, renders, writes its rows and commits; sweep claims and sends",
                "render": render,
                "record": record,
                "expand": expand,
                "sweep_webhook": webhook,
                "sweep_email": email,
                "sweep_webhook_concurrent": concurrent,
            }
            if concurrent["duplicates"] or concurrent["errors"] or webhook["rows"] != count or expand["rows"] != args.messages:
                failures.append("throughput: duplicates, errors or rows missing")
        if "burst" in args.parts:
            result["burst"] = burst = measure_burst(args, servers, users, hand_over)
            if burst["messages"]["not_delivered"]:
                failures.append("burst: messages not delivered")
        if "kill" in args.parts:
            log(f"kill: {args.kill_rounds} workers killed mid-delivery, {args.kill_bookings} bookings each, Slack answering {args.slow:g} s late")
            result["kill"] = kill = measure_kill(args, servers, users, fake_slack, hand_over, rng)
            if kill["lost"]:
                failures.append("kill: messages lost")
        if "overhead" in args.parts:
            hand_over.to_bench_queue()
            log(f"overhead: {args.samples} create_booking calls per variant ({', '.join(VARIANTS)}), broker: {hand_over.broker}")
            overhead = measure_overhead(servers, users, args.samples, future + timedelta(days=count // 12 + 2), rng, hand_over)
            result["overhead"] = {
                "note": "one create_booking (its event row; expanded later into the owner's e-mail + the server's webhook), warm-up excluded; *_adds is the variant minus receiver_disconnected",
                "broker": hand_over.broker,
                "messages_handed_over": hand_over.waiting(),
                **overhead,
            }
        result.update({
            "outbox_rows": outbox_counts(),
            "context": run_context(args),
            "failures": failures,
            "total_seconds": round(time.perf_counter() - began, 1),
        })
    finally:
        fake_slack.stop()
        hand_over.clean_up()
        end_bench_database(vendor, args)
    print(json.dumps(result, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
