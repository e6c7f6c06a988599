"""The outbox: rows written with the change, sent once, retried with backoff, visible when failed."""
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring.models import Alert
from notifications import outbox
from notifications.channels import DeliveryError
from notifications.models import Notification, OutboxEvent, Preference
from notifications.receivers import on_booking_changed
from notifications.reminders import send_reminders
from reservations import services
from reservations.errors import BookingConflict
from reservations.signals import booking_changed, quiet

RECEIVER_UID = "labres-notify-bookings"


def rows(**filters):
    """The rows queued, once the events are expanded as a worker does after commit (tests run in
    one transaction, so on_commit never fires)."""
    outbox.expand_due()
    return list(Notification.objects.filter(**filters).order_by("pk"))


def test_creating_a_booking_queues_an_email_to_its_owner(alice, thalys, book, later):
    booking = book(alice, later, server=thalys, devices="0-1", purpose="training resnet")
    [row] = rows(event="created")
    assert (row.recipient, row.channel, row.state, row.booking) == (alice, "email", "pending", booking)
    assert "thalys:0-1" in row.payload["subject"]
    assert "training resnet" in row.payload["text"]
    assert row.payload["attach_ics"] is True
    assert f"/bookings/{booking.pk}/" in row.payload["html"]


def test_a_refused_booking_queues_nothing(alice, bob, thalys, book, later):
    book(alice, later, server=thalys, devices="0")
    with pytest.raises(BookingConflict):
        book(bob, later, server=thalys, devices="0")
    assert [row.recipient for row in rows()] == [alice]


def test_sweep_sends_each_row_once(alice, thalys, book, later):
    book(alice, later, server=thalys, devices="0")
    assert outbox.sweep() == 1
    assert outbox.sweep() == 0
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["Alice Liddell <alice@lab.example.org>"]
    [row] = rows()
    assert (row.state, row.attempts) == ("sent", 1)


def test_a_member_who_chose_no_channel_hears_nothing(alice, thalys, book, later):
    Preference.objects.create(user=alice, event="created", channels=[])
    book(alice, later, server=thalys, devices="0")
    assert rows() == []


def test_a_temporary_failure_is_retried_with_backoff(alice, thalys, book, later, monkeypatch, settings):
    settings.NOTIFY_RETRY_SECONDS = 30
    book(alice, later, server=thalys, devices="0")

    def down(notification):
        raise DeliveryError("mail server down")

    monkeypatch.setattr("notifications.channels.Email.send", lambda self, n: down(n))
    now = timezone.now()
    outbox.sweep(now=now)
    [row] = rows()
    assert (row.state, row.attempts, row.last_error) == ("pending", 1, "mail server down")
    assert row.next_attempt_at == now + timedelta(seconds=30)
    assert outbox.sweep(now=now + timedelta(seconds=29)) == 0
    outbox.sweep(now=now + timedelta(seconds=30))
    row.refresh_from_db()
    assert row.attempts == 2 and row.next_attempt_at == now + timedelta(seconds=30 + 60)


def test_reminders_run_twice_queue_once(alice, thalys, later):
    start = timezone.now() + timedelta(minutes=8)
    booking = services.create_booking(alice, start=start, end=start + timedelta(hours=2), server="thalys", devices="0", now=start - timedelta(hours=1))
    type(booking).objects.filter(pk=booking.pk).update(created_at=start - timedelta(hours=1))
    assert send_reminders()["starts_soon"] == 1
    send_reminders()
    assert len(rows(event="starts_soon")) == 1


def test_slack_rate_limit_is_honoured_and_the_message_goes_out_once(alice, thalys, book, later, fake_slack):
    from notifications.models import Destination

    Destination.objects.create(name="#thalys", kind="slack_webhook", webhook_url=fake_slack.webhook_url(), server=thalys)
    Preference.objects.create(user=alice, event="created", channels=[])
    book(alice, later, server=thalys, devices="0")
    fake_slack.rate_limit_next(retry_after=7)
    now = timezone.now()
    assert outbox.sweep(now=now) == 0
    [row] = rows()
    assert row.next_attempt_at == now + timedelta(seconds=7)
    assert outbox.sweep(now=now + timedelta(seconds=7)) == 1
    [message] = fake_slack.messages()
    assert "thalys:0" in message["text"] and message["blocks"][0]["type"] == "section"


def test_nothing_is_queued_while_muted(alice, thalys, book, later):
    with quiet():
        book(alice, later, server=thalys, devices="0")
    assert not OutboxEvent.objects.exists() and rows() == []
    book(alice, later + timedelta(hours=2), server=thalys, devices="0")
    assert len(rows()) == 1


# --- events: written with the change, expanded after it ----------------------------------------


def test_a_booking_change_writes_one_event_and_no_messages_in_its_transaction(alice, thalys, book, later):
    booking = book(alice, later, server=thalys, devices="0")

    [event] = OutboxEvent.objects.all()
    assert (event.key, event.event, event.booking, event.by, event.state) == (f"created:b{booking.pk}", "created", booking, alice, "pending")
    assert not Notification.objects.exists()


def test_the_receiver_adds_one_query_to_create_booking(alice, thalys, later, django_assert_num_queries):
    def queries(start):
        with CaptureQueriesContext(connection) as captured:
            services.create_booking(alice, start=start, end=start + timedelta(hours=1), server=thalys, devices="0")
        return len(captured)

    booking_changed.disconnect(dispatch_uid=RECEIVER_UID)
    try:
        queries(later + timedelta(hours=4))  # warm-up: per-process caches (e.g. the fair-use limits) load once
        without = queries(later)
    finally:
        booking_changed.connect(on_booking_changed, dispatch_uid=RECEIVER_UID)
    with django_assert_num_queries(without + 1):
        services.create_booking(alice, start=later + timedelta(hours=2), end=later + timedelta(hours=3), server=thalys, devices="0")
    assert OutboxEvent.objects.count() == 1


def test_expanding_twice_queues_each_message_once(alice, thalys, book, later):
    book(alice, later, server=thalys, devices="0")

    first = outbox.expand_due()
    [event] = OutboxEvent.objects.all()
    assert outbox.expand_due() == [] and outbox.expand(event.pk) == []
    OutboxEvent.objects.update(state="pending")  # as if the first expansion had not been marked
    outbox.expand_due()

    assert [row.key for row in rows()] == first == [f"created:b{event.booking_id}:u{alice.pk}:email"]
    assert outbox.sweep() == 1 and outbox.sweep() == 0
    assert len(mail.outbox) == 1


def test_a_rolled_back_change_leaves_no_event(alice, thalys, later):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.create_booking(alice, start=later, end=later + timedelta(hours=1), server=thalys, devices="0")
        raise RuntimeError("the request failed after booking")

    assert not OutboxEvent.objects.exists()
    assert outbox.sweep() == 0 and rows() == []


def test_the_sweep_expands_and_sends_in_one_run(alice, thalys, book, later):
    book(alice, later, server=thalys, devices="0")

    assert outbox.sweep() == 1

    [event] = OutboxEvent.objects.all()
    assert (event.state, event.attempts) == ("expanded", 1) and event.expanded_at is not None
    assert len(mail.outbox) == 1


def test_the_worker_task_expands_the_events_it_is_given_then_sends(alice, thalys, book, later):
    booking = book(alice, later, server=thalys, devices="0")

    assert outbox.deliver([f"created:b{booking.pk}"]) == 1

    [row] = Notification.objects.all()
    assert row.state == "sent" and len(mail.outbox) == 1


def test_an_event_that_fails_to_expand_is_retried_later_and_others_go_on(alice, bob, thalys, book, later, monkeypatch, settings):
    settings.NOTIFY_RETRY_SECONDS = 30
    broken = book(alice, later, server=thalys, devices="0")
    book(bob, later, server=thalys, devices="1")
    render = outbox.render

    def fails_for_alice(occasion, family, **kwargs):
        if occasion.booking.pk == broken.pk:
            raise ValueError("template bug")
        return render(occasion, family, **kwargs)

    monkeypatch.setattr("notifications.outbox.render", fails_for_alice)
    now = timezone.now()
    assert outbox.sweep(now=now) == 1
    event = OutboxEvent.objects.get(booking=broken)
    assert (event.state, event.attempts, event.last_error) == ("pending", 1, "ValueError: template bug")
    assert event.next_attempt_at == now + timedelta(seconds=30)
    assert [row.recipient for row in Notification.objects.all()] == [bob]

    monkeypatch.setattr("notifications.outbox.render", render)
    assert outbox.sweep(now=now + timedelta(seconds=30)) == 1
    event.refresh_from_db()
    assert (event.state, event.attempts) == ("expanded", 2)


def test_an_event_that_never_expands_is_left_failed_after_the_last_attempt(alice, thalys, book, later, monkeypatch, settings):
    """A message that cannot be rendered (a bug, or a booking no template can show) stops being retried."""
    settings.NOTIFY_MAX_ATTEMPTS = 3
    book(alice, later, server=thalys, devices="0")
    monkeypatch.setattr("notifications.outbox.render", lambda *args, **kwargs: (_ for _ in ()).throw(OverflowError("date value out of range")))
    now = timezone.now()

    for _ in range(5):
        outbox.sweep(now=now)
        now += timedelta(hours=2)  # past any backoff

    event = OutboxEvent.objects.get()
    assert (event.state, event.attempts, event.last_error) == ("failed", 3, "OverflowError: date value out of range")
    assert outbox.expand_due(now=now + timedelta(days=1)) == []
    assert outbox.retry_events(OutboxEvent.objects.all(), now=now) == 1  # staff's "Expand now" still can


def test_a_booking_deleted_before_expansion_sends_nothing(alice, thalys, book, later):
    booking = book(alice, later, server=thalys, devices="0")
    booking.delete()

    assert outbox.sweep() == 0
    assert not OutboxEvent.objects.exists() and rows() == []


def test_someone_booking_right_after_you_is_told_at_expansion(alice, bob, thalys, book, later):
    mine = book(alice, later, server=thalys, devices="0-1")
    outbox.expand_due()
    theirs = book(bob, later + timedelta(hours=1, minutes=10), server=thalys, devices="1-2")

    assert OutboxEvent.objects.filter(event="followed").count() == 0  # worked out after commit
    outbox.expand_due()

    [row] = rows(event="followed")
    assert (row.key, row.recipient, row.booking) == (f"followed:b{mine.pk}:by{theirs.pk}:u{alice.pk}:email", alice, mine)
    assert "thalys:1-2" in row.payload["text"]


def test_each_change_tells_its_own_times_though_expanded_after_a_later_one(alice, thalys, book, later):
    booking = book(alice, later, server=thalys, devices="0")
    services.change_booking(booking, by=alice, end=later + timedelta(hours=2))
    services.change_booking(booking, by=alice, end=later + timedelta(hours=3))

    first, second = rows(event="changed")

    assert first.key.startswith(f"changed:b{booking.pk}@{later:%Y%m%dT%H%M%S}-{later + timedelta(hours=2):%Y%m%dT%H%M%S}:")
    assert second.key.startswith(f"changed:b{booking.pk}@{later:%Y%m%dT%H%M%S}-{later + timedelta(hours=3):%Y%m%dT%H%M%S}:")
    assert [event.context["before"][1] for event in OutboxEvent.objects.filter(event="changed").order_by("pk")] == [
        (later + timedelta(hours=1)).isoformat(), (later + timedelta(hours=2)).isoformat(),
    ]
    assert first.payload["text"] != second.payload["text"]


def test_a_new_alert_writes_one_event(alice, thalys, book, later):
    booking = book(alice, later, server=thalys, devices="0")
    alert = Alert.objects.create(
        kind=Alert.Kind.IDLE_BOOKING, key=f"idle:{booking.pk}", server=thalys, booking=booking, user=alice,
        message="idle", opened_at=later, last_seen_at=later,
    )

    event = OutboxEvent.objects.get(event="idle_booking")
    assert (event.key, event.alert, event.booking) == (f"idle_booking:a{alert.pk}", alert, booking)
    assert [row.recipient for row in rows(event="idle_booking")] == [alice]
