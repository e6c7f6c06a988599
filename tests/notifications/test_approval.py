"""Approval messages: staff are asked (with Approve/Decline), the member is told the outcome."""
import pytest
from django.core import mail

from notifications import outbox
from notifications.models import Destination, Notification
from reservations import services
from reservations.errors import NotAllowed, NotPending
from tests.factories import ServerFactory

pytestmark = pytest.mark.django_db


def rows(**filters):
    outbox.expand_due()
    return list(Notification.objects.filter(**filters).order_by("pk"))


@pytest.fixture
def h100(db):
    return ServerFactory(name="h100", gpus=4, requires_approval=True)


@pytest.fixture
def pending(alice, h100, later):
    from datetime import timedelta

    return services.create_booking(alice, start=later, end=later + timedelta(hours=2), server=h100, devices="0-1", purpose="big run")


def test_the_members_created_message_says_it_awaits_approval(pending, alice):
    [row] = rows(event="created")
    assert row.recipient == alice
    assert "Awaiting approval" in row.payload["subject"]
    assert "awaits approval" in row.payload["text"]


def test_staff_are_asked_with_a_link_to_the_decide_page_and_the_member_is_not(pending, staff, alice):
    asked = rows(event="approval_requested")
    assert [row.recipient for row in asked] == [staff]
    assert f"/bookings/{pending.pk}/decide/" in asked[0].payload["text"]
    assert "h100:0-1" in asked[0].payload["subject"]


def test_the_resources_slack_channel_gets_approve_and_decline_buttons(h100, alice, later):
    from datetime import timedelta

    destination = Destination.objects.create(name="#h100", kind=Destination.Kind.SLACK_WEBHOOK, webhook_url="https://hooks.slack.com/services/T/B/X", server=h100)
    pending = services.create_booking(alice, start=later, end=later + timedelta(hours=1), server=h100, devices="0")
    [row] = rows(event="approval_requested", destination=destination)
    buttons = [element for block in row.payload["blocks"] if block["type"] == "actions" for element in block["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons][:2] == [("booking_approve", str(pending.pk)), ("booking_decline", str(pending.pk))]
    assert "url" not in buttons[0]


def test_approval_tells_the_member(pending, staff, alice):
    services.approve_booking(pending, by=staff)
    [row] = rows(event="approved")
    assert row.recipient == alice and "approved" in row.payload["text"]


def test_decline_tells_the_member_with_the_reason(pending, staff, alice):
    services.decline_booking(pending, by=staff, reason="Reserved for the paper deadline")
    [row] = rows(event="declined")
    assert row.recipient == alice
    assert "Reserved for the paper deadline" in row.payload["text"]
    assert row.payload["attach_ics"] is True


def test_expiry_tells_the_member(pending, alice, later):
    services.expire_pending_bookings(now=later)
    [row] = rows(event="expired")
    assert row.recipient == alice and "expired" in row.payload["subject"].lower()


def test_a_request_decided_before_it_went_out_asks_nobody(pending, staff):
    services.approve_booking(pending, by=staff)
    assert rows(event="approval_requested") == []


def test_the_messages_are_sent_once(pending, staff):
    services.decline_booking(pending, by=staff, reason="no")
    outbox.sweep()
    assert outbox.sweep() == 0
    subjects = sorted(message.subject for message in mail.outbox)
    assert len([s for s in subjects if s.startswith("[labres] Declined")]) == 1


@pytest.fixture
def series(h100, alice, later):
    from datetime import timedelta

    return services.create_series(
        alice, start=later, end=later + timedelta(hours=1), repeat="daily", count=3, server=h100, devices="0", purpose="sweep",
    )


def test_a_series_on_an_approval_server_asks_staff_once_with_every_date_and_all_at_once_buttons(series, h100, staff):
    assert [booking.status for booking in series.bookings] == ["pending"] * 3
    destination = Destination.objects.create(name="#h100", kind=Destination.Kind.SLACK_WEBHOOK, webhook_url="https://hooks.slack.com/services/T/B/X", server=h100)
    [email] = rows(event="approval_requested", recipient=staff)
    assert email.booking_id == series.bookings[0].pk
    assert "3 dates" in email.payload["subject"] and "every day" in email.payload["subject"]
    assert email.payload["text"].count("  - ") == 3  # each date listed
    assert f"/bookings/{series.bookings[0].pk}/decide/" in email.payload["text"]
    assert "attach_ics" not in email.payload

    [slack] = rows(event="approval_requested", destination=destination)
    buttons = [element for block in slack.payload["blocks"] if block["type"] == "actions" for element in block["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons][:2] == [("series_approve", str(series.series.pk)), ("series_decline", str(series.series.pk))]
    assert buttons[0]["text"]["text"] == "Approve all 3"


def test_the_members_series_message_says_its_dates_await_approval(series, alice):
    [row] = rows(event="series_created", recipient=alice)
    assert row.payload["subject"].startswith("[labres] Awaiting approval: h100:0, every day")
    assert "the dates await approval by staff" in row.payload["text"]


def test_cancelling_a_series_covers_its_pending_dates(series, h100, alice):
    cancelled = services.cancel_series(series.series, by=alice)
    assert len(cancelled.bookings) == 3
    assert not h100.bookings.filter(status__in=["pending", "confirmed"]).exists()


def test_a_series_decided_at_once_tells_the_member_once_with_every_date(series, staff, alice):
    outbox.expand_due()  # the request went out
    result = services.decide_series(series.series, by=staff, approve=True)

    assert [booking.status for booking in result.bookings] == ["confirmed"] * 3
    [row] = rows(event="approved", recipient=alice)
    assert "3 dates" in row.payload["subject"]
    assert row.payload["text"].count("  - ") == 3
    assert "attach_ics" not in row.payload  # the feed updates the dates; one .ics would name one of them


def test_declining_a_series_at_once_frees_every_date_and_gives_the_reason(series, staff, alice, h100):
    services.decide_series(series.series, by=staff, approve=False, reason="The H100s are for the paper runs this week")

    assert not h100.bookings.filter(status__in=["pending", "confirmed"]).exists()
    assert not h100.bookings.filter(allocations__active=True).exists()
    [row] = rows(event="declined", recipient=alice)
    assert "The H100s are for the paper runs this week" in row.payload["text"]


def test_dates_decided_alone_are_left_and_a_request_with_nothing_left_asks_nobody(series, staff):
    first, second, third = series.bookings
    services.decline_booking(first, by=staff, reason="not that day")
    result = services.decide_series(series.series, by=staff, approve=True)
    assert [booking.pk for booking in result.bookings] == [second.pk, third.pk]
    first.refresh_from_db()
    assert first.decision == "declined"

    assert rows(event="approval_requested") == []  # decided before the request went out
    with pytest.raises(NotPending, match="no dates awaiting approval"):
        services.decide_series(series.series, by=staff, approve=False)


def test_members_cannot_decide_a_series(series, alice):
    with pytest.raises(NotAllowed, match="Only staff"):
        services.decide_series(series.series, by=alice, approve=True)
    assert {booking.status for booking in series.series.bookings.all()} == {"pending"}
