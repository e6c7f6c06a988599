"""Delivery guarantees under real conditions: reminders re-run, workers racing on the outbox, a worker
that died mid-send, a broker that is down during a change, and real Celery workers on the broker
the settings name (Redis when REDIS_URL is set, else the local folder). Messages go over real HTTP
to the local fake Slack, and each must arrive exactly once."""
import re
import socket
import threading
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from labres import celery as hand_over
from labres.celery import app
from notifications import outbox
from notifications.events import EVENTS
from notifications.models import Destination, Notification, OutboxEvent, Preference
from notifications.reminders import send_reminders
from notifications.tasks import deliver
from reservations import services
from reservations.models import Booking
from reservations.signals import quiet
from tests.factories import ServerFactory
from tests.workers import wait_for, waiting_in

REMINDERS = ["starts_soon", "ends_soon", "ended"]


# --- helpers ------------------------------------------------------------------------------------


def webhook_on(server, fake_slack):
    """A Slack incoming webhook for the server's bookings, on the fake Slack."""
    return Destination.objects.create(name=f"#{server.name}", kind="slack_webhook", webhook_url=fake_slack.webhook_url(), server=server)


def hears_nothing(user, *events):
    """The member chose no channel for these events (all of them by default)."""
    Preference.objects.bulk_create(Preference(user=user, event=event, channels=[]) for event in events or EVENTS)


def on_slack(user, slack_id="U0ALICE"):
    """The member is linked to Slack, so Slack direct messages are their default channel."""
    user.profile.slack_user_id = slack_id
    user.profile.save()


def booked_earlier(user, start, end, devices, server="thalys"):
    """A booking made a day before it starts (so reminders apply), also one whose times are now past."""
    booking = services.create_booking(user, start=start, end=end, server=server, devices=devices, now=start - timedelta(days=1))
    Booking.objects.filter(pk=booking.pk).update(created_at=start - timedelta(days=1))
    return booking


def rows(**filters):
    """The rows queued, once the events are expanded as a worker does after commit (tests run in
    one transaction, so on_commit never fires)."""
    outbox.expand_due()
    return list(Notification.objects.filter(**filters).order_by("pk"))


def texts(messages):
    return sorted(message["text"] for message in messages)


def booking_numbers(messages):
    """The booking each Slack message is about (its "Booking #N" link)."""
    return sorted(int(re.search(r"Booking #(\d+)", message["text"]).group(1)) for message in messages)


def at_once(count, work):
    """Run `work` in `count` threads released together; each thread's database connection is closed after."""
    barrier = threading.Barrier(count)
    results, errors = [], []

    def run():
        try:
            barrier.wait(timeout=30)
            results.append(work())
        except Exception as error:  # reported below, with the others
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(results) == count
    return results


# --- reminders ------------------------------------------------------------------------------------


def test_reminders_run_twice_send_each_reminder_once(alice, thalys, fake_slack):
    on_slack(alice)
    hears_nothing(alice, "created")
    Preference.objects.create(user=alice, event="ended", channels=["slack_dm"])
    now = timezone.now()
    booked_earlier(alice, now + timedelta(minutes=8), now + timedelta(hours=2), "0")  # starts soon
    booked_earlier(alice, now - timedelta(hours=1), now + timedelta(minutes=10), "1")  # ends soon
    booked_earlier(alice, now - timedelta(hours=2), now - timedelta(minutes=10), "2")  # ended

    first = send_reminders(now=now)
    second = send_reminders(now=now + timedelta(seconds=30))
    outbox.sweep()
    outbox.sweep()

    assert first == second == {"starts_soon": 1, "ends_soon": 1, "ended": 1}  # found again, queued once
    queued = rows(event__in=REMINDERS)
    assert sorted(row.event for row in queued) == sorted(REMINDERS)
    assert [(row.state, row.attempts) for row in queued] == [("sent", 1)] * 3
    messages = fake_slack.messages()
    assert texts(messages) == texts(row.payload for row in queued)
    assert {message["channel"] for message in messages} == {"U0ALICE"}


def test_a_moved_booking_gets_a_starts_soon_reminder_for_its_new_time(alice, thalys, fake_slack):
    on_slack(alice)
    hears_nothing(alice, "created", "changed")
    now = timezone.now()
    start = now + timedelta(minutes=8)
    booking = booked_earlier(alice, start, start + timedelta(hours=1), "0")
    send_reminders(now=now)
    outbox.sweep()

    services.change_booking(booking, by=alice, start=start + timedelta(hours=3), end=start + timedelta(hours=4))
    assert send_reminders(now=now)["starts_soon"] == 0  # the old time is no longer coming
    assert send_reminders(now=now + timedelta(hours=3))["starts_soon"] == 1
    outbox.sweep()

    keys = [row.key.split(":u")[0] for row in rows(event="starts_soon")]
    assert keys == [f"starts_soon:b{booking.pk}@{start:%Y%m%dT%H%M%S}", f"starts_soon:b{booking.pk}@{start + timedelta(hours=3):%Y%m%dT%H%M%S}"]
    assert len(fake_slack.messages()) == 2


def test_a_booking_made_inside_the_lead_window_gets_no_starts_soon(alice, thalys, book, fake_slack):
    on_slack(alice)
    book(alice, timezone.now() + timedelta(minutes=5), server=thalys, devices="0")  # made now, 5 min ahead

    assert send_reminders()["starts_soon"] == 0
    assert rows(event="starts_soon") == []


def test_ends_soon_is_not_sent_for_a_booking_shorter_than_twice_the_lead(alice, thalys, settings):
    settings.NOTIFY_ENDS_SOON = "15m"
    now = timezone.now()
    booked_earlier(alice, now - timedelta(minutes=5), now + timedelta(minutes=10), "0")  # 15 min long
    long = booked_earlier(alice, now - timedelta(hours=1), now + timedelta(minutes=10), "1")

    send_reminders(now=now)

    assert [row.booking for row in rows(event="ends_soon")] == [long]


def test_released_and_cancelled_bookings_get_no_ended(alice, thalys):
    Preference.objects.create(user=alice, event="ended", channels=["email"])
    now = timezone.now()
    ran_out = booked_earlier(alice, now - timedelta(hours=2), now - timedelta(minutes=10), "0")
    released = booked_earlier(alice, now - timedelta(hours=1), now + timedelta(hours=1), "1")
    services.release_booking(released, by=alice, now=now - timedelta(minutes=10))
    cancelled = booked_earlier(alice, now - timedelta(hours=1), now - timedelta(minutes=10), "2")
    services.cancel_booking(cancelled, by=alice, now=now - timedelta(hours=2))

    send_reminders(now=now)

    assert [row.booking for row in rows(event="ended")] == [ran_out]


# --- racing senders ---------------------------------------------------------------------------------


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_workers_sweeping_at_once_send_each_message_once(alice, thalys, later, fake_slack):
    hears_nothing(alice)
    webhook_on(thalys, fake_slack)
    bookings = [
        services.create_booking(alice, start=later + timedelta(hours=i // 8), end=later + timedelta(hours=i // 8 + 1), server="thalys", devices=str(i % 8))
        for i in range(50)
    ]
    assert OutboxEvent.objects.filter(state="pending").count() == 50
    assert not Notification.objects.exists()

    sent = at_once(8, outbox.sweep)  # each expands what it claims first, then sends what is due

    assert sum(sent) == 50
    assert booking_numbers(fake_slack.messages()) == sorted(b.pk for b in bookings)  # each once
    assert set(Notification.objects.values_list("state", "attempts")) == {("sent", 1)}
    assert set(OutboxEvent.objects.values_list("state", "attempts")) == {("expanded", 1)}


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_two_expanders_at_once_queue_each_message_once(alice, thalys, later, fake_slack, db_vendor):
    if db_vendor == "sqlite":
        pytest.skip("SQLite serializes writers with BEGIN IMMEDIATE; the threads race on PostgreSQL")
    webhook_on(thalys, fake_slack)  # with alice's e-mail: two messages per booking
    for i in range(40):
        services.create_booking(alice, start=later + timedelta(hours=i // 8), end=later + timedelta(hours=i // 8 + 1), server="thalys", devices=str(i % 8))

    queued = at_once(2, outbox.expand_due)

    assert sorted(key for keys in queued for key in keys) == sorted(Notification.objects.values_list("key", flat=True))
    assert Notification.objects.count() == 80
    assert set(OutboxEvent.objects.values_list("state", "attempts")) == {("expanded", 1)}


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_two_beats_running_reminders_at_once_send_each_reminder_once(alice, thalys, fake_slack):
    on_slack(alice)
    hears_nothing(alice, "created")
    ServerFactory(name="eurostar", gpus=8)
    now = timezone.now()
    bookings = [
        booked_earlier(alice, now + timedelta(minutes=8), now + timedelta(hours=1), str(i % 8), server=server)
        for server in ("thalys", "eurostar") for i in range(8)
    ]

    def beat():
        send_reminders(now=now)
        return outbox.sweep()

    sent = at_once(6, beat)

    assert sum(sent) == 16
    assert len(rows(event="starts_soon")) == 16
    assert booking_numbers(fake_slack.messages()) == sorted(b.pk for b in bookings)
    assert set(Notification.objects.values_list("state", "attempts")) == {("sent", 1)}


# --- a sender that died, a sweep that ran long ---------------------------------------------------------


def test_a_row_left_sending_by_a_dead_worker_is_sent_once_after_its_lease(alice, thalys, later, book, fake_slack, monkeypatch):
    hears_nothing(alice)
    webhook_on(thalys, fake_slack)
    book(alice, later, server=thalys, devices="0")

    def dies(channel, notification):
        raise SystemExit("worker killed mid-send")  # not an Exception: nothing in send_one catches it

    with monkeypatch.context() as patch:
        patch.setattr("notifications.channels.SlackWebhook.send", dies)
        with pytest.raises(SystemExit):
            outbox.sweep()
    [row] = rows()
    assert (row.state, row.attempts) == ("sending", 1)
    lease_end = row.next_attempt_at
    assert lease_end >= timezone.now() + outbox.send_lease() - timedelta(seconds=5)

    assert outbox.sweep(now=lease_end - timedelta(seconds=1)) == 0  # the lease still holds
    assert outbox.sweep(now=lease_end) == 1
    assert outbox.sweep(now=lease_end + timedelta(minutes=5)) == 0

    assert len(fake_slack.messages()) == 1
    row.refresh_from_db()
    assert (row.state, row.attempts) == ("sent", 2)


def test_a_sweep_that_started_long_ago_claims_each_row_for_a_full_lease(alice, thalys, later, book, fake_slack, monkeypatch):
    """A slow sweep (Slack timing out on earlier rows) reaches a row minutes after it started; another
    sweep running meanwhile must not find that row's lease already over and send it again."""
    hears_nothing(alice)
    webhook_on(thalys, fake_slack)
    book(alice, later, server=thalys, devices="0")
    from notifications.channels import SlackWebhook

    send = SlackWebhook.send
    sent_meanwhile = []

    def slow_send(channel, notification):
        sent_meanwhile.append(outbox.sweep())  # the next beat's sweep, while this one is sending
        send(channel, notification)

    monkeypatch.setattr(SlackWebhook, "send", slow_send)
    started = timezone.now() - outbox.send_lease() - timedelta(minutes=1)
    outbox.expand_due()
    Notification.objects.update(next_attempt_at=started)

    assert outbox.sweep(now=started) == 1
    assert sent_meanwhile == [0]
    assert len(fake_slack.messages()) == 1


# --- the broker and a real worker -------------------------------------------------------------------


def closed_port():
    """A local TCP port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def broker_down(tmp_path):
    """This process's broker made unreachable: Redis at a port nobody listens on, or, for the folder
    broker, an outgoing folder that is a file (kombu's filesystem transport cannot write there)."""
    conf = app.conf
    saved = conf.broker_url, conf.broker_transport_options
    if conf.broker_url.startswith("redis"):
        conf.broker_url = f"redis://127.0.0.1:{closed_port()}/0"
    else:
        blocker = tmp_path / "broker-is-down"
        blocker.write_text("")
        conf.broker_transport_options = {**saved[1], "data_folder_out": str(blocker)}
    try:
        yield
    finally:
        conf.broker_url, conf.broker_transport_options = saved


@pytest.mark.hands_to_worker
def test_a_broker_that_accepts_but_never_answers_holds_the_hand_over_up_briefly(caplog):
    """A hung Redis (or one behind a proxy that stalls): connecting works, no answer ever comes."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshakes; nobody ever reads or answers
    saved = app.conf.broker_url
    app.conf.broker_url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
    try:
        began = time.monotonic()
        hand_over.hand_over_now(deliver, ["created:b1:d1:slack_webhook"])
        took = time.monotonic() - began
    finally:
        app.conf.broker_url = saved
        silent.close()

    assert took < hand_over.HAND_OVER_TIMEOUT + 1, f"the hand-over waited {took:.1f} s"
    assert "could not hand 1 notification(s) to a worker" in caplog.text


@pytest.mark.hands_to_worker
@pytest.mark.django_db(transaction=True)
def test_a_booking_does_not_wait_for_a_hung_broker_the_hand_over_happens_behind_it(alice, thalys, later, book, caplog):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connecting works; no answer ever comes
    saved = app.conf.broker_url
    app.conf.broker_url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
    try:
        began = time.monotonic()
        book(alice, later, server=thalys, devices="0")
        book(alice, later + timedelta(hours=2), server=thalys, devices="0")
        took = time.monotonic() - began
        assert hand_over.wait_for_hand_overs(timeout=hand_over.HAND_OVER_TIMEOUT * 2 + 2)
    finally:
        app.conf.broker_url = saved
        silent.close()

    assert took < hand_over.HAND_OVER_TIMEOUT / 2, f"the bookings waited {took:.1f} s for the broker"
    # Tried (and failed) behind the bookings' backs; the rows wait for the sweep.
    assert "could not hand" in caplog.text
    assert OutboxEvent.objects.filter(state="pending").count() == 2


@pytest.mark.celery
@pytest.mark.hands_to_worker
@pytest.mark.django_db(transaction=True)
def test_a_change_made_while_the_broker_is_down_reaches_slack_once_when_it_is_back(
    alice, thalys, later, book, fake_slack, start_worker, caplog, tmp_path
):
    hears_nothing(alice)
    with quiet():  # booked quietly: nothing handed to the broker yet
        booking = book(alice, later, server=thalys, devices="0")
    webhook_on(thalys, fake_slack)

    with broker_down(tmp_path):
        began = time.monotonic()
        services.change_booking(booking, by=alice, end=booking.end + timedelta(hours=1))
        took = time.monotonic() - began
        assert hand_over.wait_for_hand_overs(timeout=5)  # the background thread's attempt, with the broker down

    assert took < 0.5, f"the change waited {took:.1f} s for the broker"
    [event] = OutboxEvent.objects.filter(state="pending")
    assert (event.event, event.attempts) == ("changed", 0)
    assert not Notification.objects.exists()  # the worker's sweep expands it
    assert "could not hand 1 notification(s) to a worker" in caplog.text
    assert waiting_in("celery") == 0  # nothing reached the broker

    worker = start_worker()  # the broker is back
    worker.run_as_beat("sweep-outbox")
    assert wait_for(lambda: len(fake_slack.messages()) == 1, timeout=10)
    worker.run_as_beat("sweep-outbox")
    outbox.sweep()

    assert booking_numbers(fake_slack.messages()) == [booking.pk]
    [row] = rows()
    assert (row.event, row.state, row.attempts) == ("changed", "sent", 1)


@pytest.mark.celery
@pytest.mark.hands_to_worker
@pytest.mark.django_db(transaction=True)
def test_a_new_booking_reaches_slack_through_the_worker_without_a_sweep(alice, thalys, later, book, fake_slack, start_worker):
    hears_nothing(alice)
    webhook_on(thalys, fake_slack)
    worker = start_worker()

    booking = book(alice, later, server=thalys, devices="0-1")

    if not wait_for(lambda: len(fake_slack.messages()) == 1, timeout=10):
        pytest.fail("the worker did not deliver the message:\n" + worker.output[-3000:])
    assert "notifications.tasks.deliver[" in worker.output
    assert booking_numbers(fake_slack.messages()) == [booking.pk]
    # Slack has it; the worker marks the row sent just after, in its own process.
    assert wait_for(lambda: Notification.objects.filter(state="sent").exists(), timeout=10), worker.output[-3000:]
    assert list(OutboxEvent.objects.values_list("state", "attempts")) == [("expanded", 1)]  # by the worker
    [row] = rows()
    assert (row.state, row.attempts) == ("sent", 1)


def test_a_sender_slower_than_two_minutes_keeps_its_row_for_longer_than_its_channel_may_take(alice, thalys, later, book, fake_slack, monkeypatch, settings):
    """With a long Slack timeout, the sweep that runs while a slow (but live) sender still waits for
    Slack's answer must not find the row's lease over and post it again."""
    settings.NOTIFY_HTTP_TIMEOUT = 300
    hears_nothing(alice)
    webhook_on(thalys, fake_slack)
    book(alice, later, server=thalys, devices="0")
    outbox.expand_due()
    [row] = Notification.objects.all()
    from notifications.channels import SlackWebhook

    send = SlackWebhook.send
    swept_meanwhile = []

    def slow_send(channel, notification):
        send(channel, notification)  # Slack has it; its answer is slow, up to the timeout
        swept_meanwhile.append(outbox.sweep(now=row.next_attempt_at + timedelta(seconds=3 * 300 - 1)))

    monkeypatch.setattr(SlackWebhook, "send", slow_send)
    assert outbox.sweep(now=row.next_attempt_at) == 1

    assert swept_meanwhile == [0]
    assert len(fake_slack.messages()) == 1


@pytest.mark.celery
@pytest.mark.hands_to_worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_delivery_loses_nothing_and_repeats_at_most_the_message_in_flight(alice, thalys, later, fake_slack, start_worker):
    hears_nothing(alice)
    webhook_on(thalys, fake_slack)
    bookings = [services.create_booking(alice, start=later, end=later + timedelta(hours=1), server="thalys", devices=str(i)) for i in range(3)]
    assert hand_over.wait_for_hand_overs(timeout=5)  # the deliver tasks wait on the broker
    fake_slack.delay = 30  # Slack posts each message at once and answers late
    worker = start_worker()

    if not wait_for(lambda: len(fake_slack.calls("webhook")) == 1, timeout=20):
        pytest.fail("the worker posted nothing:\n" + worker.output[-3000:])
    worker.process.kill()  # SIGKILL while the post is in flight: no chance to mark it sent
    worker.process.wait(timeout=10)
    fake_slack.delay = 0

    [in_flight] = Notification.objects.filter(state="sending")
    assert in_flight.attempts == 1
    assert Notification.objects.exclude(pk=in_flight.pk).filter(state="sent").count() == 0
    lease_end = in_flight.next_attempt_at
    assert outbox.sweep(now=lease_end - timedelta(seconds=1)) == 2  # the others; the one in flight keeps its lease
    assert outbox.sweep(now=lease_end) == 1  # unknown whether Slack has it: sent again
    assert outbox.sweep(now=lease_end + timedelta(hours=1)) == 0

    # Nothing lost; the one message in flight when the worker died arrived twice, no other.
    assert booking_numbers(fake_slack.messages()) == sorted([b.pk for b in bookings] + [in_flight.booking_id])
    assert set(Notification.objects.values_list("state", flat=True)) == {"sent"}
    assert Notification.objects.get(pk=in_flight.pk).attempts == 2


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_periodic_task_runs_promptly_behind_a_backlog_of_deliveries(start_worker, settings):
    """Beat's tasks have their own queue, which the worker takes from in turn with the default
    one: a sweep sent behind a backlog of deliveries runs long before the backlog is done (before,
    one queue in order: after it, often past its expiry)."""
    backlog = 200
    for n in range(backlog):
        app.send_task("notifications.tasks.deliver", args=[[f"created:b{n}"]])  # no such event: a quick no-op each
    entry = settings.CELERY_BEAT_SCHEDULE["sweep-outbox"]
    sweep = app.send_task(entry["task"], **entry["options"])  # as beat sends it

    worker = start_worker()

    if not wait_for(lambda: f"{entry['task']}[{sweep.id}] succeeded" in worker.output, timeout=60):
        pytest.fail("the worker did not run the sweep:\n" + worker.output[-3000:])
    # In one queue, in order, the sweep came after all of them; how many the worker took first
    # depends on its polling and prefetch (40 of 100 left in one run, over 50 in others).
    assert waiting_in(settings.CELERY_TASK_DEFAULT_QUEUE) > 0, "the sweep waited for the whole backlog"
    assert wait_for(lambda: waiting_in(settings.CELERY_TASK_DEFAULT_QUEUE) == 0, timeout=120), "the backlog was not drained"


def test_a_sweep_with_its_budget_spent_leaves_the_rest_for_the_next_run(alice, thalys, later, book, fake_slack):
    hears_nothing(alice)
    webhook_on(thalys, fake_slack)
    for device in "012":
        book(alice, later, server=thalys, devices=device)

    assert outbox.sweep(budget=0) == 0  # spent before it began: nothing expanded, nothing sent
    assert OutboxEvent.objects.filter(state="pending").count() == 3
    assert outbox.sweep(budget=60) == 3
    assert len(fake_slack.messages()) == 3
