"""Buttons are acknowledged at once, whatever the work or Slack's response_url cost: the work and
the answer happen after, in a real Celery worker (or a thread of the web process when the broker is
down), and the answer replaces the pressed message when the press did its work. Signed with
slack_sdk's SignatureVerifier, over real HTTP, against the local fake Slack (slow on purpose)."""
import json
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
import requests
from django.utils import timezone

from notifications.slackbot import tasks
from notifications.slackbot.commands import EXTEND_ACTION
from reservations import services
from tests.notifications.test_delivery import broker_down  # noqa: F401 - a fixture
from tests.workers import wait_for

from .test_transport import SECRET, eager_tasks, signed_headers  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = 6  # seconds the response_url takes to answer: twice Slack's limit for an acknowledgement


@pytest.fixture(autouse=True)
def signing_secret(settings):
    settings.SLACK_SIGNING_SECRET = SECRET
    settings.ALLOWED_HOSTS = ["*"]


@pytest.fixture(autouse=True)
def warm(live_server):
    """One request first, so that the times measured are the endpoint's, not the first import of Django's views."""
    assert requests.post(f"{live_server.url}/slack/interactions/", timeout=30).status_code == 401


@pytest.fixture
def running(alice, thalys):
    """Alice (linked as U0ALICE) holds thalys:0-1 from a minute ago for 2 hours."""
    alice.profile.slack_user_id = "U0ALICE"
    alice.profile.save()
    start = timezone.now() - timedelta(minutes=1)
    return services.create_booking(alice, start=start, end=start + timedelta(hours=2), purpose="work", server=thalys, devices="0-1", now=start)


def press(live_server, booking, response_url, *, action_ts="1.5"):
    """Alice presses Extend 1h on one message (Slack's block_actions payload); (response, seconds it took)."""
    payload = {
        "type": "block_actions", "user": {"id": "U0ALICE"}, "response_url": response_url,
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "D0ALICE"},
        "actions": [{"action_id": EXTEND_ACTION, "value": f"{booking.pk}:1h", "action_ts": action_ts}],
    }
    body = urlencode({"payload": json.dumps(payload)})
    began = time.monotonic()
    response = requests.post(f"{live_server.url}/slack/interactions/", data=body.encode(), headers=signed_headers(body), timeout=30)
    return response, time.monotonic() - began


def answers(fake_slack):
    return [received.body for received in fake_slack.calls("webhook")]


@pytest.mark.celery
@pytest.mark.hands_to_worker
def test_a_button_is_acknowledged_at_once_and_a_worker_answers_through_a_slow_response_url(live_server, running, fake_slack, start_worker):
    worker = start_worker()
    fake_slack.slow_next(SLOW, path="/services/actions")
    end = running.end

    response, took = press(live_server, running, fake_slack.webhook_url("actions/T0/1"))

    assert response.status_code == 200 and took < 1, f"acknowledged after {took:.1f} s"
    if not wait_for(lambda: answers(fake_slack), timeout=SLOW + 20):
        pytest.fail("no answer reached the response_url:\n" + worker.output[-3000:])
    [answer] = answers(fake_slack)
    assert answer["replace_original"] is True  # "Working on it…"/the spent buttons give way to the answer
    assert answer["text"].startswith(f"Extended booking #{running.pk}")
    assert "notifications.slackbot.tasks.answer_action[" in worker.output  # done by the worker, not the web process
    running.refresh_from_db()
    assert running.end == end + timedelta(hours=1)


@pytest.mark.hands_to_worker
def test_with_the_broker_down_a_button_is_still_acknowledged_at_once_and_answered(live_server, running, fake_slack, tmp_path, caplog):
    fake_slack.slow_next(SLOW, path="/services/actions")
    with broker_down(tmp_path):
        response, took = press(live_server, running, fake_slack.webhook_url("actions/T0/2"))
        assert tasks.wait_for_answers(SLOW + 10)

    assert response.status_code == 200 and took < 1, f"acknowledged after {took:.1f} s"
    assert "could not hand a slack answer to a worker" in caplog.text
    [answer] = answers(fake_slack)
    assert answer["replace_original"] is True and answer["text"].startswith(f"Extended booking #{running.pk}")


def test_a_press_that_did_nothing_answers_beside_the_message_and_can_be_pressed_again(live_server, running, bob, thalys, fake_slack, eager_tasks):
    """Known only after the acknowledgement: the refused press is forgotten, its buttons stay."""
    blocker = services.create_booking(bob, start=running.end, end=running.end + timedelta(hours=1), purpose="x", server=thalys, devices="1")
    url = fake_slack.webhook_url("actions/T0/3")

    press(live_server, running, url, action_ts="1.1")
    assert tasks.wait_for_answers(10)
    services.cancel_booking(blocker, by=bob)
    press(live_server, running, url, action_ts="1.2")
    assert tasks.wait_for_answers(10)
    press(live_server, running, url, action_ts="1.3")
    assert tasks.wait_for_answers(10)

    refused, extended, again = answers(fake_slack)
    assert "bob" in refused["text"] and refused["replace_original"] is False  # a new message: the buttons stay
    assert extended["text"].startswith("Extended") and extended["replace_original"] is True
    assert "already pressed this button" in again["text"] and again["replace_original"] is False
    running.refresh_from_db()
    assert running.end - running.start == timedelta(hours=3)
