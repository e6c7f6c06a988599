"""Every Slack message kind, rendered for a member and for a channel with member-written text that
tries every mrkdwn control sequence in each field (purposes, names, reasons, server and room names,
alert and waitlist texts): none survives, and the Block Kit is valid (slack_sdk's models)."""
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from monitoring.models import Alert
from notifications.events import Event
from notifications.messages import Occasion, render, slack_sections
from notifications.models import Destination, MessageTemplate
from reservations.models import Booking, Profile, Room, Server, WaitlistEntry
from tests.slackbot.block_kit import EVIL, EVIL_ESCAPED, assert_no_member_markup, assert_valid_blocks


def evil_user(pk, slack_id=""):
    user = get_user_model()(id=pk, username=f"user{pk}", first_name=EVIL, last_name=EVIL)
    user.profile = Profile(user=user, display_name=EVIL, slack_user_id=slack_id)
    return user


def occasions():
    """(name, occasion, recipient) for every event, with member text in every field it can show."""
    now = timezone.now().replace(microsecond=0)
    start = now + timedelta(hours=2)
    owner, other = evil_user(1, "U0OWNER"), evil_user(2)
    server = Server(id=1, name=EVIL)
    room = Room(id=1, name=EVIL)
    on_server = Booking(id=42, user=owner, server=server, whole_server=True, start=start, end=start + timedelta(hours=2),
                        purpose=EVIL, decision_note=EVIL, status=Booking.Status.PENDING)
    in_room = Booking(id=43, user=owner, room=room, start=start, end=start + timedelta(hours=2), purpose=EVIL, decision_note=EVIL)
    following = Booking(id=44, user=other, server=server, whole_server=True, start=on_server.end, end=on_server.end + timedelta(hours=1), purpose=EVIL)
    series = {"series_id": 9, "rule": EVIL, "dates": [(start, start + timedelta(hours=1))] * 3,
              "skipped": [(start, start + timedelta(hours=1), EVIL)], "running": [(now, start)]}
    entry = WaitlistEntry(id=5, user=owner, server=server, gpus=2, length=timedelta(hours=2), purpose=EVIL, state="offered",
                          offered_devices="0-1", token="tok", offer_expires_at=start)
    found = []
    for event in Event:
        if event in (Event.IDLE_BOOKING, Event.UNBOOKED_USE, Event.HOST_STALE):
            alert = Alert(id=7, kind=event, key="k", server=server, user=owner, message=EVIL, opened_at=now, last_seen_at=now)
            found.append((event, Occasion(event, alert=alert, booking=on_server if event == Event.IDLE_BOOKING else None)))
        elif event in (Event.WAITLIST_OFFER, Event.WAITLIST_LAPSED):
            found.append((event, Occasion(event, extra={"entry": entry, "why": EVIL})))
        else:
            for booking in (on_server, in_room):
                found.append((event, Occasion(event, booking=booking, by=other, before=(now, start), next_booking=following)))
            if event in (Event.SERIES_CREATED, Event.SERIES_CANCELLED, Event.APPROVAL_REQUESTED, Event.APPROVED, Event.DECLINED):
                found.append((event, Occasion(event, booking=on_server, by=other, extra=series)))
    return [(f"{event}-{i}", occasion, recipient) for i, (event, occasion) in enumerate(found) for recipient in ("member", "channel")]


CASES = occasions()


@pytest.mark.parametrize("name, occasion, recipient", CASES, ids=[case[0] + "-" + case[2] for case in CASES])
def test_every_slack_message_shows_member_text_escaped(name, occasion, recipient):
    owner = (occasion.booking or occasion.alert or occasion.extra["entry"]).user
    if recipient == "member":
        payload = render(occasion, "slack", user=owner)
    else:
        payload = render(occasion, "slack", destination=Destination(id=1, name="#lab", kind="slack_channel", channel="C0LAB"))
    assert_no_member_markup(payload)
    assert EVIL_ESCAPED in payload["text"]  # shown, as text


@pytest.mark.django_db
def test_a_staff_template_reading_model_fields_shows_them_escaped():
    """A staff override may read the objects ({{ booking.purpose }}), not only the escaped variables."""
    MessageTemplate.objects.create(
        event=Event.CREATED, family="slack",
        body="{{ booking.purpose }} · {{ booking.user.first_name }} · {{ booking.server.name }} · {{ user.profile.display_name }} · {{ booking.what }}",
    )
    from notifications.messages import overrides_for

    _, occasion, _ = next(case for case in CASES if case[0].startswith("created"))
    owner = occasion.booking.user
    payload = render(occasion, "slack", user=owner, overrides=overrides_for(Event.CREATED))
    assert payload["text"].count(EVIL_ESCAPED) == 5
    assert_no_member_markup(payload)


def test_a_long_text_is_split_between_lines_never_inside_an_entity_or_a_link():
    line = "&amp;" * 700  # 3,500 characters, no space: the cut falls between entities
    link = "<https://lab.example/bookings/1|booking>"
    pieces = slack_sections([line, "x " * 1400 + link + " tail", "short"])
    texts = ["\n".join(piece) for piece in pieces]
    assert all(len(text) <= 3000 for text in texts)
    assert "".join(texts).replace("\n", "").replace(" ", "") == (line + "x" * 1400 + link + "tail" + "short").replace(" ", "")
    for text in texts:
        assert text.count("&") == text.count("&amp;")
        assert text.count("<") == text.count(">")
    assert_valid_blocks([{"type": "section", "text": {"type": "mrkdwn", "text": text}} for text in texts])


def test_a_notification_longer_than_a_section_keeps_all_its_text_in_valid_blocks():
    """A series that skipped many dates, each naming another member's purpose (escaped: five times longer)."""
    _, occasion, _ = next(case for case in CASES if case[0].startswith("series_created") and case[1].extra)
    start = occasion.extra["dates"][0][0]
    occasion.extra = {**occasion.extra, "skipped": [(start + timedelta(days=i), start + timedelta(days=i, hours=1), "&" * 200) for i in range(30)]}
    payload = render(occasion, "slack", user=occasion.booking.user)
    sections = [block["text"]["text"] for block in payload["blocks"] if block["type"] == "section"]
    assert len(sections) > 1
    assert "\n".join(sections).count("&amp;" * 200) == 30  # every skipped date, nothing cut off
    assert_no_member_markup(payload)
