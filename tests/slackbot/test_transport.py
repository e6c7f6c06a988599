"""The Slack transport over real HTTP: signed requests to the live server, deferred answers
posted to a local response_url, and button payloads."""
import json
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
import requests
from django.utils import timezone
from slack_sdk.signature import SignatureVerifier

from notifications.slackbot import tasks, views
from notifications.slackbot.commands import EXTEND_ACTION, RELEASE_ACTION
from reservations import services
from reservations.models import Booking
from tests.notifications.test_delivery import broker_down

SECRET = "test-signing-secret"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def signing_secret(settings):
    settings.SLACK_SIGNING_SECRET = SECRET
    settings.ALLOWED_HOSTS = ["*"]


@pytest.fixture
def eager_tasks():
    """Celery runs tasks in the calling thread (here: the live server's), as CELERY_TASK_ALWAYS_EAGER does."""
    conf = tasks.answer_command.app.conf
    before = conf.task_always_eager
    conf.task_always_eager = True
    yield
    conf.task_always_eager = before


@pytest.fixture
def linked_alice(alice):
    alice.profile.slack_user_id = "U0ALICE"
    alice.profile.save()
    return alice


def running_booking(user, server):
    """A booking of GPUs 0-1 that started 30 minutes ago and runs 2 hours."""
    start = timezone.now() - timedelta(minutes=30)
    return services.create_booking(user, start=start, end=start + timedelta(hours=2), purpose="work", server=server, devices="0-1", now=start)


def signed_headers(body, *, timestamp=None, secret=SECRET):
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }


def post_command(live_server, text, *, user_id="U0ALICE", response_url="", headers=None):
    body = urlencode({"command": "/gpu", "text": text, "user_id": user_id, "response_url": response_url})
    return requests.post(f"{live_server.url}/slack/commands/", data=body.encode(), headers=headers or signed_headers(body), timeout=10)


def post_interaction(live_server, action_id, value, *, user_id="U0ALICE", response_url=""):
    payload = {
        "type": "block_actions", "user": {"id": user_id}, "response_url": response_url,
        "actions": [{"action_id": action_id, "value": value}],
    }
    body = urlencode({"payload": json.dumps(payload)})
    return requests.post(f"{live_server.url}/slack/interactions/", data=body.encode(), headers=signed_headers(body), timeout=10)


def test_help_is_answered_inline_and_ephemeral(live_server, linked_alice):
    response = post_command(live_server, "help")
    assert response.status_code == 200
    assert response.json()["response_type"] == "ephemeral"
    assert "claim" in response.json()["text"]


def test_claim_books_now_with_source_slack(live_server, linked_alice, thalys):
    response = post_command(live_server, "claim thalys:0-1 2h training resnet")
    assert response.status_code == 200
    booking = Booking.objects.get(user=linked_alice)
    assert booking.source == Booking.Source.SLACK
    assert booking.purpose == "training resnet"


def test_unlinked_user_is_told_to_link_first(live_server, thalys):
    response = post_command(live_server, "claim thalys:0 1h x", user_id="U0NOBODY")
    assert response.status_code == 200
    assert "link" in response.json()["text"].lower()
    assert not Booking.objects.exists()


def test_status_is_acknowledged_then_answered_through_response_url(live_server, linked_alice, thalys, fake_slack, eager_tasks):
    response = post_command(live_server, "status", response_url=fake_slack.webhook_url("commands/T0/1"))
    assert response.status_code == 200
    assert response.json()["text"] == "Working on it…"
    assert tasks.wait_for_answers(10)
    posted = [received for received in fake_slack.received if received.method_name == "webhook"]
    assert len(posted) == 1
    assert "thalys" in json.dumps(posted[0].body)
    assert posted[0].body["replace_original"] is True  # in place of "Working on it…"


def test_empty_text_is_deferred_like_status(live_server, linked_alice, thalys, monkeypatch):
    queued = []
    monkeypatch.setattr(views, "enqueue_after_commit", lambda task, *args: queued.append((task.name, list(args))))
    response = post_command(live_server, "", response_url="http://127.0.0.1:9/hook")
    assert response.json()["text"] == "Working on it…"
    assert queued == [("notifications.slackbot.tasks.answer_command", ["", "U0ALICE", "http://127.0.0.1:9/hook"])]


@pytest.mark.hands_to_worker
def test_deferred_command_is_answered_from_the_web_process_when_the_broker_is_down(live_server, linked_alice, thalys, fake_slack, tmp_path, caplog):
    post_command(live_server, "help")  # warm: the time measured is the endpoint's, not Django's first import
    with broker_down(tmp_path):
        began = time.monotonic()
        response = post_command(live_server, "status", response_url=fake_slack.webhook_url("commands/T0/9"))
        took = time.monotonic() - began
        assert tasks.wait_for_answers(10)
    assert response.json()["text"] == "Working on it…" and took < 1, f"acknowledged after {took:.1f} s"
    assert "could not hand a slack answer to a worker" in caplog.text
    [posted] = fake_slack.calls("webhook")
    assert "thalys" in json.dumps(posted.body) and posted.body["replace_original"] is True


def test_answer_command_task_posts_the_reply_to_response_url(linked_alice, fake_slack):
    assert tasks.answer_command("help", "U0ALICE", fake_slack.webhook_url("commands/T0/2")) is True
    assert "claim" in fake_slack.received[-1].body["text"]


def test_a_handler_that_raises_gets_an_ephemeral_apology_not_a_500(live_server, linked_alice, monkeypatch):
    def broken(text, *, slack_user_id, now=None):
        raise RuntimeError("database on fire")

    monkeypatch.setattr("notifications.slackbot.commands.handle_command", broken)
    response = post_command(live_server, "help")
    assert response.status_code == 200
    assert response.json()["response_type"] == "ephemeral"
    assert response.json()["text"].startswith("Something went wrong: database on fire")


def test_bad_signature_is_refused_with_401(live_server, linked_alice):
    body = urlencode({"text": "help", "user_id": "U0ALICE"})
    response = post_command(live_server, "help", headers=signed_headers(body, secret="not-the-secret"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_signature"


def test_stale_timestamp_is_refused_with_401(live_server, linked_alice):
    body = urlencode({"command": "/gpu", "text": "help", "user_id": "U0ALICE", "response_url": ""})
    response = post_command(live_server, "help", headers=signed_headers(body, timestamp=int(time.time()) - 6 * 60))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "stale"


def test_missing_headers_are_refused_with_401(live_server):
    response = requests.post(f"{live_server.url}/slack/commands/", data={"text": "help"}, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unsigned"


def test_interactions_are_verified_too(live_server):
    response = requests.post(f"{live_server.url}/slack/interactions/", data={"payload": "{}"}, timeout=10)
    assert response.status_code == 401


def test_no_signing_secret_answers_503(live_server, settings):
    settings.SLACK_SIGNING_SECRET = ""
    response = post_command(live_server, "help")
    assert response.status_code == 503
    assert "SLACK_SIGNING_SECRET" in response.json()["error"]["message"]


def test_release_button_ends_the_booking_and_answers_through_response_url(live_server, linked_alice, thalys, fake_slack, eager_tasks):
    booking = running_booking(linked_alice, thalys)
    response = post_interaction(live_server, RELEASE_ACTION, str(booking.pk), response_url=fake_slack.webhook_url("actions/T0/1"))
    assert response.status_code == 200
    assert tasks.wait_for_answers(10)
    booking.refresh_from_db()
    assert booking.end <= timezone.now()
    assert fake_slack.received[-1].body["replace_original"] is True  # the message and its spent buttons give way to the answer


def test_extend_button_makes_the_booking_an_hour_longer(live_server, linked_alice, thalys):
    booking = running_booking(linked_alice, thalys)
    end = booking.end
    response = post_interaction(live_server, EXTEND_ACTION, f"{booking.pk}:1h")
    assert response.status_code == 200
    booking.refresh_from_db()
    assert booking.end == end + timedelta(hours=1)


def test_malformed_interaction_payload_is_a_400_with_a_message(live_server):
    body = urlencode({"payload": "not json"})
    response = requests.post(f"{live_server.url}/slack/interactions/", data=body.encode(), headers=signed_headers(body), timeout=10)
    assert response.status_code == 400
    assert "payload" in response.json()["error"]["message"]


# --- Socket Mode ------------------------------------------------------------------------------


class RecordingSocketClient:
    """Stands in for SocketModeClient: keeps the acknowledgements sent back to Slack."""

    def __init__(self):
        self.responses = []

    def send_socket_mode_response(self, response):
        self.responses.append(response)


def envelope(kind, payload):
    from slack_sdk.socket_mode.request import SocketModeRequest

    return SocketModeRequest(type=kind, envelope_id="env-1", payload=payload)


def test_socket_mode_answers_a_quick_command_in_the_acknowledgement(linked_alice, thalys):
    from notifications.slackbot.socket_mode import process

    client = RecordingSocketClient()
    process(client, envelope("slash_commands", {"text": "claim thalys:0 1h eval", "user_id": "U0ALICE", "response_url": ""}))
    assert [response.envelope_id for response in client.responses] == ["env-1"]
    assert client.responses[0].payload["response_type"] in {"ephemeral", "in_channel"}
    assert Booking.objects.get(user=linked_alice).source == Booking.Source.SLACK


def test_socket_mode_acknowledges_status_then_posts_through_response_url(linked_alice, thalys, fake_slack):
    from notifications.slackbot.socket_mode import process

    client = RecordingSocketClient()
    process(client, envelope("slash_commands", {"text": "status", "user_id": "U0ALICE", "response_url": fake_slack.webhook_url("commands/T0/3")}))
    assert client.responses[0].payload["text"] == "Working on it…"
    assert "thalys" in json.dumps(fake_slack.received[-1].body)


def test_socket_mode_release_button_releases_and_answers_through_response_url(linked_alice, thalys, fake_slack):
    from notifications.slackbot.socket_mode import process

    booking = running_booking(linked_alice, thalys)
    payload = {"type": "block_actions", "user": {"id": "U0ALICE"}, "response_url": fake_slack.webhook_url("actions/T0/2"),
               "actions": [{"action_id": RELEASE_ACTION, "value": str(booking.pk)}]}
    client = RecordingSocketClient()
    process(client, envelope("interactive", payload))
    booking.refresh_from_db()
    assert client.responses[0].envelope_id == "env-1"
    assert booking.end <= timezone.now()
    assert fake_slack.received[-1].body["replace_original"] is True


def test_slack_socket_command_without_app_token_says_what_is_missing(settings):
    from django.core.management import CommandError, call_command

    settings.SLACK_APP_TOKEN = ""
    with pytest.raises(CommandError, match="SLACK_APP_TOKEN"):
        call_command("slack_socket")


@pytest.mark.parametrize(
    "text, says",
    [
        ("claim nosuch:0 2h x", "nosuch"),
        ("claim thalys:9 2h x", "9"),
        ("claim thalys:0-x 2h x", "0-x"),
        ("claim thalys:0 forever x", "forever"),
        ("book thalys:0 someday 2h x", "someday"),
        ("extend 999999 1h", "999999"),
    ],
)
def test_bad_input_gets_an_ephemeral_reply_naming_the_problem(live_server, linked_alice, thalys, text, says):
    response = post_command(live_server, text)
    assert response.status_code == 200
    answer = response.json()
    assert answer["response_type"] == "ephemeral"
    assert says in answer["text"]
    assert not Booking.objects.exists()


def test_a_conflict_says_who_holds_the_gpus_until_when(live_server, linked_alice, bob, thalys):
    held = running_booking(bob, thalys)
    response = post_command(live_server, "claim thalys:1 1h eval")
    answer = response.json()
    assert answer["response_type"] == "ephemeral"
    assert "bob" in answer["text"] and "booked" in answer["text"]
    assert list(Booking.objects.values_list("pk", flat=True)) == [held.pk]


def test_releasing_someone_elses_booking_is_refused(live_server, linked_alice, bob, thalys):
    held = running_booking(bob, thalys)
    response = post_command(live_server, f"release {held.pk}")
    assert "belongs to bob" in response.json()["text"]
    held.refresh_from_db()
    assert held.status == Booking.Status.CONFIRMED


def test_book_release_extend_and_mine_over_signed_http(live_server, linked_alice, thalys):
    booked = post_command(live_server, "book thalys:2 tomorrow 9:00 3h eval").json()
    later = Booking.objects.get()
    assert (later.source, later.purpose, later.end - later.start) == ("slack", "eval", timedelta(hours=3))
    assert f"#{later.pk}" in booked["text"]

    running = running_booking(linked_alice, thalys)
    extended = post_command(live_server, f"extend {running.pk} 1h").json()
    running.refresh_from_db()
    assert running.end - running.start == timedelta(hours=3) and f"#{running.pk}" in extended["text"]

    mine = post_command(live_server, "mine").json()
    assert f"#{running.pk}" in mine["text"] and f"#{later.pk}" in mine["text"]

    post_command(live_server, f"release {running.pk}")
    running.refresh_from_db()
    assert running.status == Booking.Status.RELEASED
