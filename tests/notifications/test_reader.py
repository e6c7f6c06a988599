"""Every message names its reader "you" and everyone else by name: the holder reads "your booking" and
"Stella Starling booked … for you"; staff who made the change read "you booked … for Bob Bramble"; a channel
post names the member and never says "you"."""
import re
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest

from monitoring.models import Alert
from notifications.events import EVENTS
from notifications.messages import Occasion, render
from notifications.models import Destination
from reservations import services
from reservations.models import WaitlistEntry

from ..factories import ServerFactory, UserFactory

pytestmark = pytest.mark.django_db

START = datetime(2031, 1, 15, 10, 0, tzinfo=dt_timezone.utc)
HOLDER, STAFF, OTHER = "Bob Bramble", "Stella Starling", "Alice Liddell"
# Events a staff member makes for the holder; the others happen to the holder (reminders, alerts, waitlist).
MADE_BY_STAFF = {"created", "changed", "cancelled", "released", "series_created", "series_cancelled", "approval_requested", "approved", "declined"}
# Only the waitlist entry's own member ever hears these: no staff copy, no channel (notifications/outbox.py).
MEMBER_ONLY = {"waitlist_offer", "waitlist_lapsed"}
YOU = re.compile(r"\byou(r|rs)?\b", re.IGNORECASE)


@pytest.fixture
def people(db, settings):
    settings.BOOKING_MAX_AHEAD = "3650d"
    bob = UserFactory(username="bob", first_name="Bob", last_name="Bramble")
    stella = UserFactory(username="stella", first_name="Stella", last_name="Starling", is_staff=True)
    alice = UserFactory(username="alice", first_name="Alice", last_name="Liddell")
    return bob, stella, alice


@pytest.fixture
def occasions(people):
    """An occasion of each event about bob's booking (or alert, or waitlist entry), staff's doing where staff act."""
    bob, stella, alice = people
    thalys = ServerFactory(name="thalys", gpus=2)
    booking = services.create_booking(bob, start=START, end=START + timedelta(hours=2), server=thalys, devices="0", purpose="bert")
    booking.decision_note = "Reserved for the deadline."
    following = services.create_booking(alice, start=booking.end, end=booking.end + timedelta(hours=1), server=thalys, devices="0")
    series = {"series_id": 7, "rule": "every week on Wednesday at 10:00 (UTC), 3 times", "dates": [(booking.start, booking.end)],
              "skipped": [], "running": []}
    alert_of = {
        "idle_booking": Alert(kind="idle_booking", server=thalys, booking=booking, user=bob,
                              message=f"Booking #{booking.pk} (thalys:0) has used at most 2% of its GPUs for the last 1h."),
        "unbooked_use": Alert(kind="unbooked_use", server=thalys, device=thalys.devices.get(index=1), user=bob, unix_username="bob",
                              message=f"{HOLDER} (unix user bob) runs process 4242 on GPU 1 on thalys (booked by {STAFF}) without a booking on it."),
        "host_stale": Alert(kind="host_stale", server=thalys, message="thalys has sent no GPU reading for 5m (last at 2031-01-15 09:55 UTC)."),
    }
    for alert in alert_of.values():
        alert.opened_at = alert.last_seen_at = START
        alert.key = f"{alert.kind}:x"
        alert.save()
    entry = WaitlistEntry.objects.create(user=bob, server=thalys, gpus=1, length=timedelta(hours=2), not_after=START,
                                         queued_at=START - timedelta(hours=1), state="offered", offered_devices="0",
                                         offer_expires_at=START + timedelta(minutes=10), token="t0k3n")
    made = {}
    for event in EVENTS:
        if event in alert_of:
            made[event] = Occasion(event, alert=alert_of[event], booking=alert_of[event].booking)
        elif event in MEMBER_ONLY:
            made[event] = Occasion(event, extra={"entry": entry, "why": "nobody claimed the offer"})
        elif event == "followed":
            made[event] = Occasion(event, booking=booking, next_booking=following)
        else:
            extra = series if event.startswith("series_") else {}
            by = stella if event in MADE_BY_STAFF else None
            before = (booking.start - timedelta(hours=1), booking.end - timedelta(hours=1)) if event == "changed" else None
            made[event] = Occasion(event, booking=booking, by=by, before=before, extra=extra)
    return made


def texts(occasion, reader):
    """Every text the reader gets of this occasion, Slack and e-mail, without the e-mail's greeting (their own name)."""
    slack, email = render(occasion, "slack", user=reader), render(occasion, "email", user=reader)
    body = email["text"].split("\n", 1)[1] if email["text"].startswith("Hello ") else email["text"]
    return {"slack": slack["text"], "email subject": email["subject"], "email": body}


@pytest.mark.parametrize("event", sorted(set(EVENTS) - {"host_stale"}))  # about a host: nobody holds it
def test_the_holder_reads_you_and_others_by_name(people, occasions, event):
    bob, _, _ = people

    for family, text in texts(occasions[event], bob).items():
        assert HOLDER not in text, f"{event} ({family}) names its reader: {text!r}"
        assert family == "email subject" or YOU.search(text), f"{event} ({family}) does not speak to its reader: {text!r}"
        if family != "email subject" and (event in MADE_BY_STAFF or event == "unbooked_use"):
            assert STAFF in text, f"{event} ({family}) does not name staff: {text!r}"


@pytest.mark.parametrize("event", sorted(set(EVENTS) - MEMBER_ONLY))
def test_staff_read_you_for_themselves_and_the_member_by_name(people, occasions, event):
    _, stella, _ = people

    for family, text in texts(occasions[event], stella).items():
        assert STAFF not in text, f"{event} ({family}) names its reader: {text!r}"
        if event != "host_stale" and family != "email subject":
            assert HOLDER in text, f"{event} ({family}) does not name the member: {text!r}"
        if event in MADE_BY_STAFF and family != "email subject":
            assert re.search(r"\bYou (booked|cancelled|released|moved|changed|approved|declined)\b", text), text
        assert not re.search(r"\byour (booking|recurring)\b", text, re.IGNORECASE), f"{event} ({family}) gives staff the member's booking: {text!r}"


def test_staff_who_booked_for_a_member_read_it_so_and_the_member_reads_whom_it_was(people, occasions):
    bob, stella, _ = people

    assert render(occasions["created"], "slack", user=bob)["text"].startswith(f"{STAFF} booked *thalys:0* ")
    assert f"booked *thalys:0* " in render(occasions["created"], "slack", user=stella)["text"]
    assert render(occasions["created"], "slack", user=stella)["text"].startswith("You booked *thalys:0* ")
    assert f"for {HOLDER}." in render(occasions["created"], "email", user=stella)["text"]
    assert "for you." in render(occasions["created"], "email", user=bob)["text"]


@pytest.mark.parametrize("event", sorted(set(EVENTS) - MEMBER_ONLY))
def test_channel_posts_name_the_member_and_never_say_you(people, occasions, event):
    channel = Destination.objects.create(name="lab", kind=Destination.Kind.SLACK_CHANNEL, channel="C0LAB")

    text = render(occasions[event], "slack", destination=channel)["text"]

    assert not YOU.search(text), f"{event} says 'you' in a channel: {text!r}"
    if event != "host_stale":
        assert HOLDER in text, f"{event} does not name the member in a channel: {text!r}"


def test_the_member_an_unbooked_use_alert_names_reads_you(people, occasions):
    bob, stella, _ = people

    to_bob = render(occasions["unbooked_use"], "slack", user=bob)["text"]
    to_stella = render(occasions["unbooked_use"], "slack", user=stella)["text"]

    assert f"You (unix user bob) run process 4242 on GPU 1 on thalys (booked by {STAFF})" in to_bob
    assert f"{HOLDER} (unix user bob) runs process 4242 on GPU 1 on thalys (booked by you)" in to_stella
