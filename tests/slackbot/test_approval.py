"""Approve / Decline buttons on approval_requested messages: signed interactions, staff only."""
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.slackbot.commands import APPROVE_ACTION, DECLINE_ACTION, handle_action
from reservations import services
from reservations.models import Booking
from tests.factories import ServerFactory

from .test_transport import SECRET, post_interaction

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def signing_secret(settings):
    settings.SLACK_SIGNING_SECRET = SECRET  # post_interaction signs with it (slack_sdk's SignatureVerifier)
    settings.ALLOWED_HOSTS = ["*"]


@pytest.fixture
def pending(alice):
    server = ServerFactory(name="h100", gpus=2, requires_approval=True)
    start = timezone.now() + timedelta(days=1)
    return services.create_booking(alice, start=start, end=start + timedelta(hours=1), server=server, devices="0", purpose="big run")


@pytest.fixture
def linked_staff(staff):
    staff.profile.slack_user_id = "U0STELLA"
    staff.profile.save()
    return staff


@pytest.fixture
def linked_alice(alice):
    alice.profile.slack_user_id = "U0ALICE"
    alice.profile.save()
    return alice


def test_a_signed_approve_click_by_linked_staff_approves(live_server, linked_staff, pending):
    response = post_interaction(live_server, APPROVE_ACTION, str(pending.pk), user_id="U0STELLA")
    assert response.status_code == 200
    assert "Approved booking" in response.json()["text"]
    assert Booking.objects.get(pk=pending.pk).status == Booking.Status.CONFIRMED


def test_a_signed_decline_click_by_linked_staff_declines(live_server, linked_staff, pending):
    response = post_interaction(live_server, DECLINE_ACTION, str(pending.pk), user_id="U0STELLA")
    assert "Declined booking" in response.json()["text"]
    booking = Booking.objects.get(pk=pending.pk)
    assert (booking.status, booking.decision, booking.decided_by_id) == ("cancelled", "declined", linked_staff.pk)


def test_a_member_clicking_approve_is_refused(live_server, linked_alice, pending):
    response = post_interaction(live_server, APPROVE_ACTION, str(pending.pk), user_id="U0ALICE")
    assert "Only staff can approve" in response.json()["text"]
    assert Booking.objects.get(pk=pending.pk).status == Booking.Status.PENDING


def test_an_unlinked_slack_user_is_asked_to_link_first(live_server, pending):
    response = post_interaction(live_server, APPROVE_ACTION, str(pending.pk), user_id="U0NOBODY")
    assert "Link your Slack account first" in response.json()["text"]
    assert Booking.objects.get(pk=pending.pk).status == Booking.Status.PENDING


def test_a_second_click_says_it_was_already_decided(linked_staff, pending):
    handle_action(APPROVE_ACTION, str(pending.pk), slack_user_id="U0STELLA")
    reply = handle_action(DECLINE_ACTION, str(pending.pk), slack_user_id="U0STELLA")
    assert "already approved" in reply.text
    assert Booking.objects.get(pk=pending.pk).status == Booking.Status.CONFIRMED


def test_mine_shows_pending_bookings(linked_alice, pending):
    from notifications.slackbot.commands import handle_command

    assert "awaiting approval" in handle_command("mine", slack_user_id="U0ALICE").text


def test_an_approve_click_with_a_bad_signature_is_refused(live_server, linked_staff, pending):
    import json
    from urllib.parse import urlencode

    import requests

    from .test_transport import signed_headers

    payload = {"type": "block_actions", "user": {"id": "U0STELLA"}, "actions": [{"action_id": APPROVE_ACTION, "value": str(pending.pk)}]}
    body = urlencode({"payload": json.dumps(payload)})
    headers = signed_headers(body, secret="not-the-secret")
    response = requests.post(f"{live_server.url}/slack/interactions/", data=body.encode(), headers=headers, timeout=10)
    assert response.status_code == 401
    assert Booking.objects.get(pk=pending.pk).status == Booking.Status.PENDING


def test_the_decline_with_a_reason_link_button_is_acknowledged_quietly(live_server, linked_staff, pending):
    response = post_interaction(live_server, "booking_open", str(pending.pk), user_id="U0STELLA")
    assert (response.status_code, response.json()) == (200, {})
    assert Booking.objects.get(pk=pending.pk).status == Booking.Status.PENDING


@pytest.fixture
def pending_series(alice):
    server = ServerFactory(name="h200", gpus=2, requires_approval=True)
    start = timezone.now() + timedelta(days=1)
    return services.create_series(alice, start=start, end=start + timedelta(hours=1), repeat="weekly", count=3, server=server, devices="1")


def test_a_signed_approve_all_click_approves_every_pending_date_of_the_series(live_server, linked_staff, pending_series):
    from notifications.slackbot.commands import SERIES_APPROVE_ACTION

    response = post_interaction(live_server, SERIES_APPROVE_ACTION, str(pending_series.series.pk), user_id="U0STELLA")
    assert response.status_code == 200
    assert f"Approved 3 dates of series #{pending_series.series.pk}" in response.json()["text"]
    assert set(pending_series.series.bookings.values_list("status", flat=True)) == {"confirmed"}


def test_decline_all_by_a_member_is_refused_and_a_second_click_says_nothing_is_left(live_server, linked_alice, linked_staff, pending_series):
    from notifications.slackbot.commands import SERIES_DECLINE_ACTION

    response = post_interaction(live_server, SERIES_DECLINE_ACTION, str(pending_series.series.pk), user_id="U0ALICE")
    assert "Only staff can decline" in response.json()["text"]
    assert set(pending_series.series.bookings.values_list("status", flat=True)) == {"pending"}

    assert "Declined 3 dates" in handle_action(SERIES_DECLINE_ACTION, str(pending_series.series.pk), slack_user_id="U0STELLA").text
    again = handle_action(SERIES_DECLINE_ACTION, str(pending_series.series.pk), slack_user_id="U0STELLA").text
    assert "no dates awaiting approval" in again
    assert "no series #9999" in handle_action(SERIES_DECLINE_ACTION, "9999", slack_user_id="U0STELLA").text
