"""The Slack channels end to end: rows written by real booking changes and alerts, sent by the
outbox over real HTTP (slack-sdk) to the local fake Slack, and judged by what it received."""
import json
import socket
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.utils import timezone

from monitoring.models import Alert
from notifications import outbox
from notifications.models import Destination, Notification, Preference
from notifications.reminders import send_reminders
from notifications.slack_identity import link_members
from reservations import services
from reservations.models import Profile
from reservations.parsing import format_span
from tests.factories import ServerFactory

BOOKING_EVENTS = ["created", "changed", "cancelled", "released"]
UNBOOKED = "bob (unix user bob) runs process 4242 on GPU 3 on thalys (not booked) without a booking on it."


# --- helpers ------------------------------------------------------------------------------------


def webhook(fake_slack, name, **scope):
    """An incoming-webhook destination at its own path (/services/T0/B0/<name>) on the fake Slack."""
    return Destination.objects.create(name=f"#{name}", kind="slack_webhook", webhook_url=fake_slack.webhook_url(f"T0/B0/{name}"), **scope)


def bot_channel(channel_id="C0THALYS", **scope):
    """A channel the bot posts to."""
    return Destination.objects.create(name="#thalys-bot", kind="slack_channel", channel=channel_id, **scope)


def posted_to(fake_slack, name):
    """The messages one webhook received and answered 200."""
    return [r.body for r in fake_slack.calls("webhook") if r.path == f"/services/T0/B0/{name}" and r.status == 200]


def bot_posts(fake_slack, channel=None):
    """The chat.postMessage calls the fake answered 200 (to one channel, or all)."""
    return [r for r in fake_slack.calls("chat.postMessage") if r.status == 200 and channel in (None, r.body.get("channel"))]


def link_slack(user, slack_id):
    Profile.objects.filter(user=user).update(slack_user_id=slack_id)
    user.profile.refresh_from_db()


def hears_nothing_itself(user):
    """The member chose no channel for booking events, so only destinations are left to hear them."""
    Preference.objects.bulk_create(Preference(user=user, event=event, channels=[]) for event in [*BOOKING_EVENTS, "ends_soon"])


def running_booking(user, hours=1, purpose="work", devices="0-1"):
    """A booking that started ten minutes ago (made a day before it started)."""
    start = timezone.now().replace(microsecond=0) - timedelta(minutes=10)
    end = start + timedelta(hours=hours)
    return services.create_booking(user, start=start, end=end, purpose=purpose, server="thalys", devices=devices, now=start - timedelta(days=1))


def alert(kind, server, *, user=None, booking=None, message="something happened"):
    now = timezone.now()
    return Alert.objects.create(
        kind=kind, key=f"{kind}:{Alert.objects.count()}", server=server, user=user, booking=booking,
        message=message, opened_at=now, last_seen_at=now,
    )


def button_parts(button):
    return (button["text"]["text"], button["action_id"], button["value"], button["url"])


def rows(**filters):
    """The rows queued, once the events are expanded as a worker does after commit (tests run in
    one transaction, so on_commit never fires)."""
    outbox.expand_due()
    return list(Notification.objects.filter(**filters).order_by("pk"))


def addressees(**filters):
    return sorted(row.addressee for row in rows(**filters))


def closed_port_url():
    """An address on this machine where nothing listens (the port was just freed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def local(moment):
    return moment.astimezone(ZoneInfo(settings.TIME_ZONE))


def span(start, end):
    """A booking's times as messages show them to a member without a time zone of their own."""
    return format_span(start, end, ZoneInfo(settings.TIME_ZONE))


# --- a resource's incoming webhook --------------------------------------------------------------


def happen(event, alice, book, later):
    """Make one booking event happen to one of alice's thalys:0-1 bookings; returns the booking."""
    if event == "released":
        return services.release_booking(running_booking(alice, purpose="training resnet"), by=alice)
    booking = book(alice, later, hours=2, server="thalys", devices="0-1", purpose="training resnet")
    if event == "changed":
        return services.change_booking(booking, by=alice, start=later + timedelta(hours=1), end=later + timedelta(hours=3))
    if event == "cancelled":
        return services.cancel_booking(booking, by=alice)
    return booking


@pytest.mark.parametrize("event", BOOKING_EVENTS)
def test_a_server_webhook_hears_each_booking_event_in_block_kit_with_a_text_fallback(event, alice, thalys, book, later, fake_slack):
    webhook(fake_slack, "thalys", server=thalys)
    booking = happen(event, alice, book, later)
    outbox.sweep()
    # Every event but "created" follows the booking's own "created" message.
    assert sorted(row.event for row in rows(destination__isnull=False)) == sorted({"created", event})
    [row] = rows(destination__isnull=False, event=event)
    posted = posted_to(fake_slack, "thalys")
    assert len(posted) == len({"created", event})
    [message] = [m for m in posted if m["text"] == row.payload["text"]]
    text = message["text"]
    assert "*thalys:0-1*" in text and "Alice Liddell" in text
    if event == "released":
        assert f"at {local(booking.end):%H:%M}" in text
    else:
        assert span(booking.start, booking.end) in text
    if event == "changed":
        assert f"(was {span(later, later + timedelta(hours=2))})" in text
    else:
        assert "training resnet" in text
    section, actions, context = message["blocks"]
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    [button] = actions["elements"]
    assert actions["type"] == "actions"
    assert (button["text"]["text"], button["url"]) == ("Open booking", f"{settings.SITE_URL}/bookings/{booking.pk}/")
    assert context["type"] == "context" and f"times in {settings.TIME_ZONE}" in context["elements"][0]["text"]
    assert message["unfurl_links"] is False


def test_a_room_destination_hears_room_bookings_only(alice, thalys, room, book, later, fake_slack):
    webhook(fake_slack, "lab2", room=room)
    book(alice, later, server=thalys, devices="0")
    book(alice, later, room=room, purpose="group meeting")
    outbox.sweep()
    [message] = posted_to(fake_slack, "lab2")
    assert "room Lab 2" in message["text"] and "group meeting" in message["text"]


def test_a_server_destination_does_not_hear_another_servers_bookings(alice, thalys, book, later, fake_slack):
    webhook(fake_slack, "thalys", server=thalys)
    ServerFactory(name="kronos", gpus=2)
    book(alice, later, server="kronos", devices="0")
    outbox.sweep()
    assert posted_to(fake_slack, "thalys") == []


def test_a_lab_wide_destination_does_not_hear_bookings_by_default(alice, thalys, book, later, fake_slack):
    webhook(fake_slack, "lab")
    booking = book(alice, later, server=thalys, devices="0")
    services.cancel_booking(booking, by=alice)
    outbox.sweep()
    assert rows(destination__isnull=False) == []
    assert posted_to(fake_slack, "lab") == []


def test_a_lab_wide_destination_hears_unbooked_use_and_stale_hosts(bob, thalys, fake_slack):
    webhook(fake_slack, "lab")
    alert("unbooked_use", thalys, user=bob, message=UNBOOKED)
    alert("host_stale", thalys, message="thalys has sent no GPU reading for 10m.")
    outbox.sweep()
    texts = [m["text"] for m in posted_to(fake_slack, "lab")]
    assert len(texts) == 2
    assert any("Unbooked use on thalys" in t and "process 4242 on GPU 3" in t for t in texts)
    assert any("thalys has sent no GPU reading for 10m." in t for t in texts)


def test_a_destination_with_an_events_list_hears_just_those(alice, thalys, book, later, fake_slack):
    webhook(fake_slack, "releases", server=thalys, events=["released"])
    webhook(fake_slack, "lab-created", events=["created"])
    book(alice, later, server=thalys, devices="2")
    services.release_booking(running_booking(alice), by=alice)
    outbox.sweep()
    [released] = posted_to(fake_slack, "releases")
    assert "released *thalys:0-1*" in released["text"]
    created = sorted(m["text"] for m in posted_to(fake_slack, "lab-created"))
    assert len(created) == 2
    assert "booked *thalys:0-1*" in created[0] and "booked *thalys:2*" in created[1]


# --- the bot: direct messages and channel posts -------------------------------------------------


def test_a_linked_member_gets_a_direct_message_from_the_bot(alice, thalys, book, later, fake_slack):
    link_slack(alice, "U0ALICE")
    booking = book(alice, later, server=thalys, devices="0-1", purpose="training resnet")
    outbox.sweep()
    [call] = bot_posts(fake_slack)
    assert call.body["channel"] == "U0ALICE"
    assert call.headers["Authorization"] == "Bearer xoxb-test-token"
    assert call.body["text"].startswith("You booked *thalys:0-1*") and "training resnet" in call.body["text"]
    assert call.body["blocks"][1]["elements"][0]["url"] == f"{settings.SITE_URL}/bookings/{booking.pk}/"
    [row] = rows()
    assert (row.channel, row.state, row.attempts) == ("slack_dm", "sent", 1)


def test_a_linked_member_defaults_to_slack_and_an_unlinked_one_to_email(alice, bob, thalys, book, later, fake_slack):
    link_slack(alice, "U0ALICE")
    book(alice, later, server=thalys, devices="0")
    book(bob, later, server=thalys, devices="1")
    assert [(row.recipient.username, row.channel) for row in rows()] == [("alice", "slack_dm"), ("bob", "email")]


def test_a_linked_member_gets_email_while_no_bot_token_is_set(alice, thalys, book, later, settings):
    settings.SLACK_BOT_TOKEN = ""
    link_slack(alice, "U0ALICE")
    book(alice, later, server=thalys, devices="0")
    assert [row.channel for row in rows()] == ["email"]


def test_a_bot_channel_post_mentions_a_linked_owner_by_slack_id(alice, thalys, book, later, fake_slack):
    link_slack(alice, "U0ALICE")
    hears_nothing_itself(alice)
    bot_channel(server=thalys)
    book(alice, later, server=thalys, devices="0")
    outbox.sweep()
    [call] = bot_posts(fake_slack)
    assert call.body["channel"] == "C0THALYS"
    assert call.body["text"].startswith("<@U0ALICE> booked *thalys:0*")


def test_a_bot_channel_post_names_an_unlinked_owner(alice, thalys, book, later, fake_slack):
    bot_channel(server=thalys)
    book(alice, later, server=thalys, devices="0")
    outbox.sweep()
    [call] = bot_posts(fake_slack, "C0THALYS")
    assert call.body["text"].startswith("Alice Liddell booked *thalys:0*")
    assert "<@" not in call.body["text"]


# --- the expiry warning -------------------------------------------------------------------------


def test_ends_soon_carries_extend_and_release_buttons(alice, thalys, fake_slack):
    link_slack(alice, "U0ALICE")
    Preference.objects.create(user=alice, event="created", channels=[])
    booking = running_booking(alice, hours=2, purpose="training resnet")
    assert send_reminders(now=booking.end - timedelta(minutes=10))["ends_soon"] == 1
    outbox.sweep()
    [call] = bot_posts(fake_slack, "U0ALICE")
    assert f"ends at {local(booking.end):%H:%M}" in call.body["text"]
    [actions] = [block for block in call.body["blocks"] if block["type"] == "actions"]
    extend, release = actions["elements"]
    page = f"{settings.SITE_URL}/bookings/{booking.pk}/"
    assert button_parts(extend) == ("Extend 1h", "booking_extend", f"{booking.pk}:1h", f"{page}#extend")
    assert button_parts(release) == ("Release now", "booking_release", str(booking.pk), f"{page}#release")


# --- failures -----------------------------------------------------------------------------------


def test_a_rate_limited_webhook_waits_as_slack_asks_then_sends_once(alice, thalys, book, later, fake_slack):
    hears_nothing_itself(alice)
    webhook(fake_slack, "thalys", server=thalys)
    book(alice, later, server=thalys, devices="0")
    fake_slack.rate_limit_next(retry_after=7, path="/services")
    now = timezone.now()
    assert outbox.sweep(now=now) == 0
    [row] = rows()
    assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 1, now + timedelta(seconds=7))
    assert "429" in row.last_error
    assert outbox.sweep(now=now + timedelta(seconds=6)) == 0
    assert outbox.sweep(now=now + timedelta(seconds=7)) == 1
    assert outbox.sweep(now=now + timedelta(hours=1)) == 0
    assert len(posted_to(fake_slack, "thalys")) == 1
    assert len(fake_slack.calls("webhook")) == 2


def test_a_rate_limited_web_api_call_waits_as_slack_asks_then_sends_once(alice, thalys, book, later, fake_slack):
    link_slack(alice, "U0ALICE")
    book(alice, later, server=thalys, devices="0")
    fake_slack.rate_limit_next(retry_after=12, path="/api/chat.postMessage")
    now = timezone.now()
    assert outbox.sweep(now=now) == 0
    [row] = rows()
    assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 1, now + timedelta(seconds=12))
    assert outbox.sweep(now=now + timedelta(seconds=12)) == 1
    assert outbox.sweep(now=now + timedelta(hours=1)) == 0
    assert len(bot_posts(fake_slack, "U0ALICE")) == 1


def test_a_slack_500_is_retried_with_backoff_until_the_last_attempt_fails(alice, thalys, book, later, fake_slack, settings):
    settings.NOTIFY_RETRY_SECONDS = 10
    settings.NOTIFY_MAX_ATTEMPTS = 3
    hears_nothing_itself(alice)
    webhook(fake_slack, "thalys", server=thalys)
    book(alice, later, server=thalys, devices="0")
    fake_slack.answer_next(500, times=3, path="/services")
    now = timezone.now()
    outbox.sweep(now=now)
    [row] = rows()
    assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 1, now + timedelta(seconds=10))
    outbox.sweep(now=now + timedelta(seconds=10))
    row.refresh_from_db()
    assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 2, now + timedelta(seconds=10 + 20))
    outbox.sweep(now=now + timedelta(seconds=30))
    row.refresh_from_db()
    assert (row.state, row.attempts) == ("failed", 3)
    assert row.last_error == "The webhook answered 500: internal error"
    assert outbox.sweep(now=now + timedelta(days=1)) == 0
    assert len(fake_slack.calls("webhook")) == 3 and posted_to(fake_slack, "thalys") == []


def test_a_web_api_500_is_retried(alice, thalys, book, later, fake_slack):
    link_slack(alice, "U0ALICE")
    book(alice, later, server=thalys, devices="0")
    fake_slack.answer_next(500, path="/api/chat.postMessage")
    now = timezone.now()
    outbox.sweep(now=now)
    [row] = rows()
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error.startswith("Slack answered 500")
    assert outbox.sweep(now=row.next_attempt_at) == 1


def test_a_webhook_slack_no_longer_knows_fails_at_once(alice, thalys, book, later, fake_slack):
    hears_nothing_itself(alice)
    webhook(fake_slack, "thalys", server=thalys)
    book(alice, later, server=thalys, devices="0")
    fake_slack.answer_next(404, path="/services")
    now = timezone.now()
    outbox.sweep(now=now)
    [row] = rows()
    assert (row.state, row.attempts) == ("failed", 1)
    assert row.last_error == "The webhook answered 404: no_service"
    assert outbox.sweep(now=now + timedelta(days=1)) == 0
    assert len(fake_slack.calls("webhook")) == 1


def test_a_bot_post_to_an_unknown_channel_fails_at_once(alice, thalys, book, later, fake_slack):
    hears_nothing_itself(alice)
    bot_channel(server=thalys)
    book(alice, later, server=thalys, devices="0")
    fake_slack.answer_next(200, {"ok": False, "error": "channel_not_found"}, path="/api/chat.postMessage")
    now = timezone.now()
    outbox.sweep(now=now)
    [row] = rows()
    assert (row.state, row.attempts) == ("failed", 1)
    assert "channel_not_found" in row.last_error
    assert outbox.sweep(now=now + timedelta(days=1)) == 0


def test_an_unreachable_webhook_is_retried_and_sent_once_it_answers(alice, thalys, book, later, fake_slack, settings):
    settings.NOTIFY_RETRY_SECONDS = 10
    hears_nothing_itself(alice)
    nowhere = f"{closed_port_url()}/services/T0/B0/thalys"
    destination = Destination.objects.create(name="#thalys", kind="slack_webhook", webhook_url=nowhere, server=thalys)
    book(alice, later, server=thalys, devices="0")
    now = timezone.now()
    assert outbox.sweep(now=now) == 0
    [row] = rows()
    assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 1, now + timedelta(seconds=10))
    assert row.last_error.startswith("The webhook could not be reached")
    Destination.objects.filter(pk=destination.pk).update(webhook_url=fake_slack.webhook_url("T0/B0/thalys"))
    assert outbox.sweep(now=now + timedelta(seconds=10)) == 1
    assert len(posted_to(fake_slack, "thalys")) == 1


def test_an_unreachable_web_api_is_retried(alice, thalys, book, later, fake_slack, settings):
    link_slack(alice, "U0ALICE")
    book(alice, later, server=thalys, devices="0")
    settings.SLACK_API_URL = f"{closed_port_url()}/api/"
    now = timezone.now()
    assert outbox.sweep(now=now) == 0
    [row] = rows()
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error.startswith("Slack could not be reached")
    settings.SLACK_API_URL = fake_slack.api_url
    assert outbox.sweep(now=row.next_attempt_at) == 1
    assert len(bot_posts(fake_slack, "U0ALICE")) == 1


def test_a_garbled_answer_from_slack_is_retried_as_an_outage(alice, thalys, book, later, fake_slack, caplog):
    hears_nothing_itself(alice)
    webhook(fake_slack, "thalys", server=thalys)
    book(alice, later, server=thalys, devices="0")
    fake_slack.garble_next(path="/services")
    now = timezone.now()
    assert outbox.sweep(now=now) == 0
    [row] = rows()
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error.startswith("The webhook could not be reached")
    assert "unexpected error" not in caplog.text  # an outage, not a bug in the channel
    assert outbox.sweep(now=row.next_attempt_at) == 1


def test_a_slack_that_does_not_answer_in_time_is_retried(alice, thalys, book, later, fake_slack, settings):
    settings.NOTIFY_HTTP_TIMEOUT = 0.2
    link_slack(alice, "U0ALICE")
    book(alice, later, server=thalys, devices="0")
    fake_slack.stay_silent_next(path="/api/chat.postMessage")
    now = timezone.now()
    assert outbox.sweep(now=now) == 0
    [row] = rows()
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error.startswith("Slack could not be reached") and "timed out" in row.last_error
    assert outbox.sweep(now=row.next_attempt_at) == 1


def test_a_webhook_url_that_is_not_http_fails_at_once(alice, thalys, book, later, fake_slack):
    hears_nothing_itself(alice)
    Destination.objects.create(name="#thalys", kind="slack_webhook", webhook_url="ftp://hooks.example.org/services/T0/B0/x", server=thalys)
    book(alice, later, server=thalys, devices="0")
    outbox.sweep()
    [row] = rows()
    assert (row.state, row.attempts) == ("failed", 1)
    assert "ftp://hooks.example.org/services/T0/B0/x" in row.last_error and "https://hooks.slack.com/services/" in row.last_error


# --- escaping -----------------------------------------------------------------------------------


def test_a_purpose_cannot_mention_the_whole_channel(alice, thalys, book, later, fake_slack):
    hears_nothing_itself(alice)
    webhook(fake_slack, "thalys", server=thalys)
    book(alice, later, server=thalys, devices="0", purpose="<!channel> & <b>")
    outbox.sweep()
    [message] = posted_to(fake_slack, "thalys")
    assert "_&lt;!channel&gt; &amp; &lt;b&gt;_" in message["text"]
    assert "<!channel>" not in json.dumps(message) and "<b>" not in json.dumps(message)


def test_a_display_name_cannot_mention_the_whole_channel(alice, thalys, book, later, fake_slack):
    Profile.objects.filter(user=alice).update(display_name="<!here> Alice")
    bot_channel(server=thalys)
    book(alice, later, server=thalys, devices="0")
    outbox.sweep()
    [call] = bot_posts(fake_slack, "C0THALYS")
    assert call.body["text"].startswith("&lt;!here&gt; Alice booked")
    assert "<!here>" not in json.dumps(call.body)


# --- linking members by e-mail ------------------------------------------------------------------


def test_link_members_stores_the_slack_ids_slack_knows(alice, bob, fake_slack):
    fake_slack.users_by_email["alice@lab.example.org"] = "U0ALICE"
    assert link_members() == 1
    assert Profile.objects.get(user=alice).slack_user_id == "U0ALICE"
    assert Profile.objects.get(user=bob).slack_user_id == ""
    looked_up = sorted(call.body["email"] for call in fake_slack.calls("users.lookupByEmail"))
    assert looked_up == ["alice@lab.example.org", "bob@lab.example.org"]


def test_link_members_leaves_linked_members_alone(alice, bob, fake_slack):
    link_slack(alice, "U0OLDID")
    fake_slack.users_by_email["alice@lab.example.org"] = "U0ALICE"
    assert link_members() == 0
    assert Profile.objects.get(user=alice).slack_user_id == "U0OLDID"
    assert [call.body["email"] for call in fake_slack.calls("users.lookupByEmail")] == ["bob@lab.example.org"]


def test_link_members_stops_quietly_when_slack_fails(alice, bob, fake_slack):
    fake_slack.users_by_email.update({"alice@lab.example.org": "U0ALICE", "bob@lab.example.org": "U0BOB"})
    fake_slack.answer_next(500, path="/api/users.lookupByEmail")
    assert link_members() == 0
    assert len(fake_slack.calls("users.lookupByEmail")) == 1
    assert set(Profile.objects.values_list("slack_user_id", flat=True)) == {""}
    assert link_members() == 2  # the next run, with Slack back


def test_link_members_stops_quietly_on_a_garbled_answer(alice, bob, fake_slack):
    fake_slack.users_by_email["alice@lab.example.org"] = "U0ALICE"
    fake_slack.garble_next(path="/api/users.lookupByEmail")
    assert link_members() == 0
    assert len(fake_slack.calls("users.lookupByEmail")) == 1


def test_link_members_skips_a_deactivated_slack_account(alice, bob, fake_slack):
    fake_slack.users_by_email.update({
        "alice@lab.example.org": "U0ALICE", "bob@lab.example.org": {"id": "U0BOB", "deleted": True},
    })
    assert link_members() == 1
    assert Profile.objects.get(user=bob).slack_user_id == ""


def test_link_members_does_nothing_without_a_bot_token(alice, fake_slack, settings):
    settings.SLACK_BOT_TOKEN = ""
    fake_slack.users_by_email["alice@lab.example.org"] = "U0ALICE"
    assert link_members() == 0
    assert fake_slack.calls() == []


# --- monitoring alerts --------------------------------------------------------------------------


def test_unbooked_use_goes_to_the_process_owner_staff_and_the_lab(alice, bob, staff, thalys, fake_slack):
    lab = webhook(fake_slack, "lab")
    webhook(fake_slack, "thalys", server=thalys)
    link_slack(bob, "U0BOB")
    found = alert("unbooked_use", thalys, user=bob, message=UNBOOKED)
    assert addressees(alert=found) == ["#lab", "bob", "stella"]
    assert [row.channel for row in rows(recipient=bob)] == ["slack_dm"]
    assert [row.destination for row in rows(alert=found, destination__isnull=False)] == [lab]
    assert outbox.sweep() == 3
    [dm] = bot_posts(fake_slack, "U0BOB")
    assert "Please book the GPU" in dm.body["text"] and "process 4242" in dm.body["text"]


def test_idle_booking_goes_to_the_bookings_owner(alice, bob, staff, thalys, book, later, fake_slack):
    webhook(fake_slack, "lab")
    link_slack(alice, "U0ALICE")
    booking = book(alice, later, server=thalys, devices="0-1")
    idle = f"Booking #{booking.pk} (thalys:0-1) has used at most 0% of its GPUs for the last 1h."
    found = alert("idle_booking", thalys, booking=booking, message=idle)
    assert addressees(alert=found) == ["alice"]
    outbox.sweep()
    [dm] = [call for call in bot_posts(fake_slack, "U0ALICE") if "looks unused" in call.body["text"]]
    assert dm.body["text"].startswith(f"Your booking of *thalys:0-1* looks unused: Booking #{booking.pk} (thalys:0-1) has used at most 0%")


def test_a_stale_host_goes_to_staff_and_the_lab_not_to_members(alice, bob, staff, thalys, fake_slack):
    webhook(fake_slack, "lab")
    webhook(fake_slack, "thalys", server=thalys)
    found = alert("host_stale", thalys, message="thalys has sent no GPU reading for 10m.")
    assert addressees(alert=found) == ["#lab", "stella"]
    outbox.sweep()
    [message] = posted_to(fake_slack, "lab")
    assert message["text"].startswith(":red_circle: thalys has sent no GPU reading for 10m.")
    assert message["blocks"][1]["elements"][0]["text"]["text"] == "Live GPUs"
