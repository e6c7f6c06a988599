"""Slack requests act once: a signed request sent again is refused as a replay, and a button acts once
per message, also when two copies race (signed with slack_sdk's own SignatureVerifier, over real HTTP)."""
import json
import threading
from datetime import datetime, timedelta, timezone as dt_timezone
from urllib.parse import urlencode

import pytest
import requests
import time_machine
from slack_sdk.signature import SignatureVerifier

from labres.cache import FileCache
from notifications.slackbot.commands import EXTEND_ACTION
from reservations import services
from reservations.models import Booking

SECRET = "test-signing-secret"
NOW = datetime(2031, 3, 4, 12, 0, tzinfo=dt_timezone.utc)  # a Tuesday noon; every time below is built from it

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def frozen_clock():
    """The portal and the signer read one clock (the live server runs in this process)."""
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture(autouse=True)
def signing_secret(settings):
    settings.SLACK_SIGNING_SECRET = SECRET
    settings.ALLOWED_HOSTS = ["*"]


@pytest.fixture
def linked_alice(alice):
    alice.profile.slack_user_id = "U0ALICE"
    alice.profile.save()
    return alice


@pytest.fixture
def running(linked_alice, thalys):
    """Alice's booking of thalys:0-1, 12:00 to 14:00."""
    return services.create_booking(linked_alice, start=NOW, end=NOW + timedelta(hours=2), purpose="work", server=thalys, devices="0-1", now=NOW)


def signed(body, *, seconds_later=0):
    """The headers Slack sends with `body`, signed at NOW + seconds_later."""
    timestamp = str(int(NOW.timestamp()) + seconds_later)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=timestamp, body=body),
    }


def command_body(text):
    return urlencode({"command": "/gpu", "text": text, "user_id": "U0ALICE", "response_url": ""})


def press_body(booking, *, message_ts="2031030412.000100", action_ts="2031030412.500000"):
    """An Extend 1h press on the message `message_ts`, as Slack's block_actions payload has it."""
    payload = {
        "type": "block_actions", "user": {"id": "U0ALICE"}, "response_url": "",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": "D0ALICE", "is_ephemeral": False},
        "channel": {"id": "D0ALICE"}, "message": {"ts": message_ts},
        "actions": [{"action_id": EXTEND_ACTION, "value": f"{booking.pk}:1h", "action_ts": action_ts}],
    }
    return urlencode({"payload": json.dumps(payload)})


def post(live_server, path, body, headers):
    return requests.post(f"{live_server.url}/slack/{path}/", data=body.encode(), headers=headers, timeout=10)


def test_a_replayed_claim_is_refused_and_books_nothing(live_server, linked_alice, thalys):
    body = command_body("claim thalys:0 2h training")
    headers = signed(body)
    assert post(live_server, "commands", body, headers).status_code == 200
    first = Booking.objects.get(user=linked_alice)
    services.release_booking(first, by=linked_alice)  # GPU 0 is free again

    replay = post(live_server, "commands", body, headers)

    assert list(Booking.objects.filter(user=linked_alice).values_list("pk", flat=True)) == [first.pk]
    assert replay.status_code == 409
    assert replay.json()["error"]["code"] == "replayed"


def test_the_same_command_signed_anew_is_not_a_replay(live_server, linked_alice, thalys):
    body = command_body("help")
    assert post(live_server, "commands", body, signed(body)).status_code == 200
    assert post(live_server, "commands", body, signed(body, seconds_later=1)).status_code == 200


def test_extend_replayed_three_times_extends_once(live_server, running):
    body = press_body(running)
    headers = signed(body)
    answers = [post(live_server, "interactions", body, headers).status_code for _ in range(4)]
    running.refresh_from_db()
    assert answers == [200, 409, 409, 409]
    assert running.end == NOW + timedelta(hours=3)


def test_a_press_delivered_twice_extends_once_and_says_so(live_server, running):
    """A double click, or a payload sent again: new signatures, the same message and button."""
    first = press_body(running, action_ts="2031030412.500000")
    second = press_body(running, action_ts="2031030413.100000")
    assert post(live_server, "interactions", first, signed(first)).status_code == 200
    again = post(live_server, "interactions", second, signed(second, seconds_later=1))
    running.refresh_from_db()
    assert running.end == NOW + timedelta(hours=3)
    assert again.status_code == 200
    assert "already pressed this button" in again.json()["text"]
    assert f"/gpu extend {running.pk} 1h" in again.json()["text"]


def test_extend_on_a_new_message_extends_again(live_server, running):
    """A later reminder is a new message with its own Extend button: pressing it acts."""
    first = press_body(running, message_ts="2031030412.000100")
    second = press_body(running, message_ts="2031030413.000200")
    post(live_server, "interactions", first, signed(first))
    post(live_server, "interactions", second, signed(second, seconds_later=2))
    running.refresh_from_db()
    assert running.end == NOW + timedelta(hours=4)


def test_a_press_that_was_refused_can_be_pressed_again(live_server, running, bob, thalys):
    """Nothing was done the first time (bob held the next hour), so the button still works."""
    blocker = services.create_booking(bob, start=running.end, end=running.end + timedelta(hours=1), purpose="x", server=thalys, devices="1", now=NOW)
    body = press_body(running)
    refused = post(live_server, "interactions", body, signed(body))
    assert "bob" in refused.json()["text"]
    services.cancel_booking(blocker, by=bob, now=NOW)
    post(live_server, "interactions", body, signed(body, seconds_later=1))
    running.refresh_from_db()
    assert running.end == NOW + timedelta(hours=3)


def race(count, send):
    """Run send(i) in `count` threads released together; their results, in order."""
    start = threading.Barrier(count)
    results = [None] * count

    def run(i):
        start.wait()
        results[i] = send(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@pytest.mark.race
def test_identical_requests_racing_act_once(live_server, running):
    body = press_body(running)
    headers = signed(body)
    statuses = race(4, lambda i: post(live_server, "interactions", body, headers).status_code)
    running.refresh_from_db()
    assert sorted(statuses) == [200, 409, 409, 409]
    assert running.end == NOW + timedelta(hours=3)


@pytest.mark.race
def test_one_button_pressed_twice_at_once_acts_once(live_server, running):
    bodies = [press_body(running, action_ts=f"2031030412.50000{i}") for i in range(4)]
    race(4, lambda i: post(live_server, "interactions", bodies[i], signed(bodies[i], seconds_later=i)).status_code)
    running.refresh_from_db()
    assert running.end == NOW + timedelta(hours=3)


def test_with_the_cache_down_slack_still_works(live_server, linked_alice, thalys, settings):
    """Failing open, as decided (README): Redis down must not make the bot unusable."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}
    body = command_body("claim thalys:0 1h eval")
    answer = post(live_server, "commands", body, signed(body))
    assert answer.status_code == 200
    assert Booking.objects.filter(user=linked_alice).count() == 1


@pytest.mark.race
def test_the_embedded_cache_adds_a_key_once_however_many_race(tmp_path):
    """Django's own FileBasedCache lets several racing add()s win; ours lets one."""
    caches = [FileCache(str(tmp_path / "cache"), {}) for _ in range(16)]  # one per thread, as separate processes have
    for attempt in range(5):
        won = race(16, lambda i: caches[i].add(f"key-{attempt}", i, timeout=60))
        assert won.count(True) == 1, won


class RecordingSocketClient:
    def __init__(self):
        self.acknowledged = []

    def send_socket_mode_response(self, response):
        self.acknowledged.append(response.envelope_id)


def test_a_socket_mode_envelope_delivered_twice_is_acknowledged_twice_and_acts_once(linked_alice, thalys):
    from slack_sdk.socket_mode.request import SocketModeRequest

    from notifications.slackbot.socket_mode import process

    envelope = SocketModeRequest(type="slash_commands", envelope_id="env-7", payload={"text": "claim thalys:0 1h eval", "user_id": "U0ALICE"})
    client = RecordingSocketClient()
    process(client, envelope)
    first = Booking.objects.get(user=linked_alice)
    services.release_booking(first, by=linked_alice)  # GPU 0 is free again
    process(client, envelope)
    assert client.acknowledged == ["env-7", "env-7"]
    assert list(Booking.objects.filter(user=linked_alice).values_list("pk", flat=True)) == [first.pk]
