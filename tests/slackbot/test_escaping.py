"""Every command reply and button answer shows other members' text (purposes, display names, room
names, decline reasons, waitlist notes) escaped: no <!channel>, mention or link survives in any
mrkdwn text of the payload, and the Block Kit is valid. And Slack's escaped command text
(should_escape: true in the shipped manifest) is read back as typed, in every argument."""
from datetime import timedelta

import pytest

from notifications.slackbot import tasks
from notifications.slackbot.commands import (
    APPROVE_ACTION, DECLINE_ACTION, EXTEND_ACTION, RELEASE_ACTION, WAITLIST_CLAIM_ACTION, handle_action, handle_command,
)
from notifications.slackbot.words import words
from reservations import services
from reservations.services import waitlist
from reservations.models import Booking, Profile, WaitlistEntry
from tests.factories import RoomFactory, UserFactory

from .block_kit import EVIL, EVIL_ESCAPED, assert_no_member_markup
from .conftest import link


@pytest.fixture
def lab(alice, bob, staff, thalys, later):
    """Bob (display name, purposes, a waitlist note: all EVIL) holds thalys:0 and a room named EVIL;
    alice holds thalys:1-2 twice over the next hours; staff and alice are linked to Slack."""
    link(alice, "UALICE")
    link(staff, "USTAFF")
    Profile.objects.filter(user=bob).update(display_name=EVIL)
    room = RoomFactory(name=EVIL, requires_approval=True)
    now = later
    held = services.create_booking(bob, start=now, end=now + timedelta(hours=3), purpose=EVIL, server=thalys, devices="0", now=now)
    pending = services.create_booking(bob, start=now + timedelta(hours=5), end=now + timedelta(hours=6), purpose=EVIL, room=room, now=now)
    mine = [services.create_booking(alice, start=now, end=now + timedelta(hours=2), purpose=EVIL, server=thalys, devices=str(i), now=now)
            for i in (1, 2)]
    waitlist.join(alice, server=thalys.name, gpus="1", length=timedelta(hours=1), purpose=EVIL, now=now)
    return {"now": now, "held": held, "pending": pending, "mine": mine, "room": room}


def command_replies(lab):
    now = lab["now"]
    said = {}
    for text in [
        "claim thalys:0 1h x",  # refused: bob's purpose and name
        "book thalys:0 +30m 1h x",
        "status", "status thalys", "realtime", "status &lt;!channel&gt;", "mine", "release", "wait",
        "release thalys:5", "extend #12x 1h", "claim thalys:0-x 1h x", "claim thalys:3 &lt;@U0EVIL&gt; x",
        "book thalys:3 &lt;!here&gt; 1h x", "claim thalys:3 1h cpus=&lt;!here&gt; x", "&lt;!channel&gt;",
        "link <mailto:nobody&amp;x@lab.org|nobody&amp;x@lab.org>", "wait thalys 2 1h <!channel> run",
        f"extend {lab['mine'][0].pk} 1h", "claim thalys:4 1h <!channel> <@U0EVIL|evil> <https://evil.example|click me> &amp; *bold*",
    ]:
        said[text] = handle_command(text, slack_user_id="UALICE", now=now)
    said["release (a room named EVIL)"] = handle_command(f"release {lab['mine'][1].pk}", slack_user_id="UALICE", now=now)
    return said


def button_replies(lab):
    now = lab["now"]
    pending = lab["pending"]
    said = {
        "release another's": handle_action(RELEASE_ACTION, str(lab["held"].pk), slack_user_id="UALICE", now=now),
        "extend another's": handle_action(EXTEND_ACTION, f"{lab['held'].pk}:1h", slack_user_id="UALICE", now=now),
        "approve": handle_action(APPROVE_ACTION, str(pending.pk), slack_user_id="USTAFF", now=now),
        "approve again": handle_action(APPROVE_ACTION, str(pending.pk), slack_user_id="USTAFF", now=now),
        "claim a stale offer": handle_action(WAITLIST_CLAIM_ACTION, f"{WaitlistEntry.objects.get().pk}:nope", slack_user_id="UALICE", now=now),
    }
    decline = services.create_booking(lab["held"].user, start=now + timedelta(hours=7), end=now + timedelta(hours=8), purpose=EVIL, room=lab["room"], now=now)
    said["decline"] = handle_action(DECLINE_ACTION, str(decline.pk), slack_user_id="USTAFF", now=now)
    return said


def test_every_command_reply_shows_member_text_escaped(lab):
    replies = command_replies(lab)
    for text, reply in replies.items():
        assert_no_member_markup(reply.as_slack())
    refusal = replies["claim thalys:0 1h x"]
    assert refusal.refused and EVIL_ESCAPED in refusal.text  # bob's purpose and name, shown as text
    assert EVIL_ESCAPED in replies["mine"].text and EVIL_ESCAPED in replies["status thalys"].as_slack()["blocks"][1]["text"]["text"]


def test_every_button_answer_shows_member_text_escaped(lab):
    for name, reply in button_replies(lab).items():
        assert_no_member_markup(reply.as_slack())


def test_a_handler_that_fails_with_member_text_in_its_error_answers_it_escaped(lab, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError(EVIL)

    monkeypatch.setattr("notifications.slackbot.commands.handle_command", broken)
    reply = tasks.run_command("mine", "UALICE")
    assert reply.text.startswith("Something went wrong: ")
    assert_no_member_markup(reply.as_slack())


# --- Slack's escaped forms, read back -------------------------------------------------------------


@pytest.mark.parametrize("sent, typed", [
    ("<@U123|bob> <@W9>", ["@bob", "@W9"]),
    ("<mailto:bob@lab.org|bob@lab.org>", ["bob@lab.org"]),
    ("<mailto:bob@lab.org>", ["bob@lab.org"]),
    ("<http://thalys.lab.org|thalys.lab.org> <https://wiki.lab.org/a?b=1&amp;c=2>", ["thalys.lab.org", "https://wiki.lab.org/a?b=1&c=2"]),
    ("<#C0123|general> <!channel> <!subteam^S1|@gpu-users>", ["#general", "@channel", "@gpu-users"]),
    ("R&amp;D &lt;x&gt; &amp;lt;", ["R&D", "<x>", "&lt;"]),
    ("<https://a.example|two words> x", ["two words", "x"]),
])
def test_slacks_escaped_text_is_read_back_as_typed(sent, typed):
    assert words(sent) == typed


def test_a_mention_keeps_the_members_slack_id():
    mention, email = words("<@U0BOB|bob> <mailto:bob@lab.org|bob@lab.org>")
    assert (mention.member_id, email.member_id) == ("U0BOB", "")


def test_staff_link_a_member_with_slacks_escaped_mention_and_address(lab, bob):
    Profile.objects.filter(user=bob).update(display_name="")
    bob.email = "bob@lab.org"
    bob.save()
    reply = handle_command("link <@U0BOB|bob> <mailto:bob@lab.org|bob@lab.org>", slack_user_id="USTAFF", now=lab["now"])
    assert not reply.refused, reply.text
    assert reply.text == "Linked <@U0BOB> to bob."
    assert Profile.objects.get(user=bob).slack_user_id == "U0BOB"


def test_a_purpose_is_stored_as_typed_not_as_slack_sent_it(lab, alice):
    reply = handle_command("claim thalys:5 1h R&amp;D &lt;eval&gt; see <https://wiki.lab.org/run|wiki.lab.org/run> <!here>",
                           slack_user_id="UALICE", now=lab["now"])
    assert not reply.refused, reply.text
    booking = Booking.objects.filter(user=alice).latest("pk")
    assert booking.purpose == "R&D <eval> see wiki.lab.org/run @here"
    assert "R&amp;D &lt;eval&gt; see wiki.lab.org/run @here" in reply.text


def test_a_server_that_slack_made_a_link_is_still_the_server(lab, alice):
    reply = handle_command("claim <http://thalys|thalys>:6 1h eval", slack_user_id="UALICE", now=lab["now"])
    assert not reply.refused, reply.text
    assert Booking.objects.filter(user=alice).latest("pk").what == "thalys:6"


def test_an_unlinked_member_links_with_slacks_mailto_form(db, fake_slack, later):
    member = UserFactory(username="carol", email="carol@lab.org")
    fake_slack.emails_by_id["U0CAROL"] = "carol@lab.org"
    reply = handle_command("link <mailto:carol@lab.org|carol@lab.org>", slack_user_id="U0CAROL", now=later)
    assert reply.text.startswith("Linked: you are carol")
    assert Profile.objects.get(user=member).slack_user_id == "U0CAROL"
