"""The outbox: rows written with the change, sent once, retried with backoff, visible when failed."""
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from notifications import outbox
from notifications.channels import DeliveryError
from notifications.models import Notification, Preference
from notifications.reminders import send_reminders
from reservations import services
from reservations.errors import BookingConflict


def rows(**filters):
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
    with outbox.muted():
        book(alice, later, server=thalys, devices="0")
    assert rows() == []
    book(alice, later + timedelta(hours=2), server=thalys, devices="0")
    assert len(rows()) == 1
