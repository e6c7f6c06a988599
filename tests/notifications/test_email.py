"""E-mail: what members receive (text, HTML, .ics, their time zone, staff's texts) and delivery
through a real SMTP server (aiosmtpd), including a server that is down or refuses."""
import asyncio
import email
import re
import socket
from datetime import UTC, datetime, timedelta
from email import policy
from html.parser import HTMLParser

import icalendar
import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.utils import timezone

from labres.celery import wait_for_hand_overs
from monitoring.models import Alert
from notifications import outbox
from notifications.messages import VARIABLES
from notifications.models import MessageTemplate, Notification, Preference
from notifications.reminders import send_reminders
from reservations import services

from tests.factories import UserFactory
from tests.workers import wait_for

SITE = "https://labres.example.org"
PURPOSE = "training resnet"
MARKUP = '<script>alert("hi")</script> & <b>resnet</b>'


@pytest.fixture(autouse=True)
def site_url(settings):
    settings.SITE_URL = SITE


def rows(**filters):
    """The rows queued, once the events are expanded as a worker does after commit (tests run in
    one transaction, so on_commit never fires)."""
    outbox.expand_due()
    return list(Notification.objects.filter(**filters).order_by("pk"))


def send(event):
    """Send the queued rows of one event; the e-mails they produced."""
    mail.outbox.clear()
    outbox.deliver(ids=[row.pk for row in rows(event=event)])
    return list(mail.outbox)


def parsed(message):
    """The message as a mail client reads it: the MIME Django built, parsed back."""
    return email.message_from_bytes(message.message().as_bytes(), policy=policy.default)


def part(mime, content_type):
    """The decoded text of the one part of `content_type`; None when there is none."""
    found = [p for p in mime.walk() if p.get_content_type() == content_type]
    assert len(found) <= 1, f"more than one {content_type} part"
    return found[0].get_content() if found else None


def calendar_of(mime):
    return icalendar.Calendar.from_ical(part(mime, "text/calendar"))


class Links(HTMLParser):
    def __init__(self, html):
        super().__init__()
        self.hrefs = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.hrefs += [value for name, value in attrs if tag == "a" and name == "href"]


# --- the events a member hears about by e-mail, each made to happen the way labres makes it ---


def _created(alice, staff, thalys, later, purpose):
    return services.create_booking(alice, start=later, end=later + timedelta(hours=2), purpose=purpose, server=thalys, devices="0-1")


def _changed(alice, staff, thalys, later, purpose):
    booking = _created(alice, staff, thalys, later, purpose)
    return services.change_booking(booking, by=staff, end=later + timedelta(hours=3))


def _cancelled(alice, staff, thalys, later, purpose):
    return services.cancel_booking(_created(alice, staff, thalys, later, purpose), by=alice)


def _released(alice, staff, thalys, later, purpose):
    booking = services.create_booking(
        alice, start=later, end=later + timedelta(hours=2), purpose=purpose, server=thalys, devices="0-1", now=later - timedelta(hours=1),
    )
    return services.release_booking(booking, by=alice, now=later + timedelta(minutes=40))


def _starts_soon(alice, staff, thalys, later, purpose):
    booking = _created(alice, staff, thalys, later, purpose)
    send_reminders(now=later - timedelta(minutes=5))
    return booking


def _ends_soon(alice, staff, thalys, later, purpose):
    booking = _created(alice, staff, thalys, later, purpose)
    send_reminders(now=booking.end - timedelta(minutes=10))
    return booking


def _idle_booking(alice, staff, thalys, later, purpose):
    booking = _created(alice, staff, thalys, later, purpose)
    Alert.objects.create(
        kind=Alert.Kind.IDLE_BOOKING, key=f"idle:{booking.pk}", server=thalys, booking=booking, user=alice,
        message=f"Booking #{booking.pk} (thalys:0-1) has used at most 2% of its GPUs for the last 30m.",
        opened_at=later + timedelta(minutes=30), last_seen_at=later + timedelta(minutes=30),
    )
    return booking


HAPPEN = {
    "created": _created, "changed": _changed, "cancelled": _cancelled, "released": _released,
    "starts_soon": _starts_soon, "ends_soon": _ends_soon, "idle_booking": _idle_booking,
}
WITH_ICS = ["created", "changed", "cancelled"]


@pytest.fixture
def happen(alice, staff, thalys, later):
    """happen(event, purpose=...) makes `event` happen to a booking of alice's on thalys:0-1 and
    returns (the booking as it is now, the one e-mail alice got for that event)."""

    def happen(event, purpose=PURPOSE):
        booking = HAPPEN[event](alice, staff, thalys, later, purpose)
        [message] = send(event)
        booking.refresh_from_db()
        return booking, message

    return happen


# --- 1. what each e-mail looks like -------------------------------------------------------------


@pytest.mark.parametrize("event", HAPPEN)
def test_a_booking_email_has_a_subject_a_text_and_an_html_alternative(happen, event):
    booking, message = happen(event)
    mime = parsed(message)
    subject = str(mime["Subject"]).strip()  # folded before its first word when not ASCII
    assert subject == message.subject and subject.startswith("[labres] ") and "thalys:0-1" in subject
    assert mime.get_content_type() == ("multipart/mixed" if event in WITH_ICS else "multipart/alternative")
    text, html = part(mime, "text/plain"), part(mime, "text/html")
    assert text.startswith("Hello Alice Liddell,") and PURPOSE in text
    assert html.startswith("<!doctype html>") and "Hello Alice Liddell," in html and PURPOSE in html


@pytest.mark.parametrize("event", HAPPEN)
def test_a_booking_email_goes_to_the_owner_by_name_and_says_it_is_automatic(happen, event):
    booking, message = happen(event)
    mime = parsed(message)
    [to] = mime["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Alice Liddell", "alice@lab.example.org")
    assert mime["Auto-Submitted"] == "auto-generated"


@pytest.mark.parametrize("event", HAPPEN)
def test_every_link_in_a_booking_email_is_absolute(happen, event):
    booking, message = happen(event)
    mime = parsed(message)
    text_links = re.findall(r"\w+://\S+", part(mime, "text/plain"))
    html_links = Links(part(mime, "text/html")).hrefs
    assert f"{SITE}/profile/" in text_links and f"{SITE}/bookings/{booking.pk}/" in html_links
    assert [url for url in text_links + html_links if not url.startswith(f"{SITE}/")] == []


@pytest.mark.parametrize("event", HAPPEN)
def test_a_purpose_with_markup_is_escaped_in_the_html_and_verbatim_in_the_text(happen, event):
    booking, message = happen(event, purpose=MARKUP)
    mime = parsed(message)
    html = part(mime, "text/html")
    assert MARKUP in part(mime, "text/plain")
    assert "<script" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&quot;hi&quot;)&lt;/script&gt; &amp; &lt;b&gt;resnet&lt;/b&gt;" in html


def test_the_idle_booking_email_says_when_the_server_releases_idle_bookings(alice, staff, thalys, later):
    thalys.release_idle_bookings = True
    thalys.save()
    booking = _idle_booking(alice, staff, thalys, later, PURPOSE)
    [message] = send("idle_booking")
    assert "thalys releases idle bookings, so labres is releasing this one now." in message.body
    assert f"{SITE}/bookings/{booking.pk}/#release" not in message.body


# --- 2. the .ics attachment ---------------------------------------------------------------------


@pytest.mark.parametrize("event", WITH_ICS)
def test_created_changed_and_cancelled_emails_carry_the_booking_as_an_ics_event(happen, event):
    booking, message = happen(event)
    [attachment] = parsed(message).iter_attachments()
    assert (attachment.get_content_type(), attachment.get_filename()) == ("text/calendar", f"booking-{booking.pk}.ics")
    [vevent] = icalendar.Calendar.from_ical(attachment.get_content()).walk("VEVENT")
    assert str(vevent["UID"]) == f"booking-{booking.pk}@labres.example.org"
    assert (vevent.decoded("DTSTART"), vevent.decoded("DTEND")) == (booking.start, booking.end)
    assert vevent.decoded("DTSTART").utcoffset() == timedelta(0) and vevent["DTSTART"].to_ical().endswith(b"Z")
    assert str(vevent["SUMMARY"]) == "GPU thalys:0-1 — training resnet"
    assert str(vevent["STATUS"]) == ("CANCELLED" if event == "cancelled" else "CONFIRMED")


def test_the_ics_of_a_changed_booking_has_its_new_end(happen, later):
    booking, message = happen("changed")
    [vevent] = calendar_of(parsed(message)).walk("VEVENT")
    assert vevent.decoded("DTEND") == later + timedelta(hours=3)


@pytest.mark.parametrize("event", ["released", "starts_soon", "ends_soon", "idle_booking"])
def test_other_booking_emails_carry_no_ics(happen, event):
    booking, message = happen(event)
    assert list(parsed(message).iter_attachments()) == []


# --- 3. the recipient's time zone ---------------------------------------------------------------

ZONES = {
    "Asia/Tokyo": ("Wed 15 Jan 10:00–13:00 JST", "Wed 15 Jan 10:00–12:00 JST"),
    "America/New_York": ("Tue 14 Jan 20:00–23:00 EST", "Tue 14 Jan 20:00–22:00 EST"),
}


@pytest.fixture
def bookable_in_2031(settings):
    """The tests below book on fixed dates in January 2031, years ahead: further than BOOKING_MAX_AHEAD allows by default."""
    settings.BOOKING_MAX_AHEAD = "3650d"


@pytest.mark.usefixtures("bookable_in_2031")
@pytest.mark.parametrize("zone", ZONES)
def test_times_are_shown_in_the_recipients_time_zone(alice, staff, thalys, zone):
    alice.profile.time_zone = zone
    alice.profile.save()
    start = datetime(2031, 1, 15, 1, 0, tzinfo=UTC)
    booking = services.create_booking(alice, start=start, end=start + timedelta(hours=2), purpose=PURPOSE, server=thalys, devices="0-1")
    services.change_booking(booking, by=staff, end=start + timedelta(hours=3))
    [message] = send("changed")
    now, was = ZONES[zone]
    assert message.subject == f"[labres] stella changed your booking: thalys:0-1, now {now}"
    assert "stella changed your booking of thalys:0-1." in message.body
    assert f"Now:      {now}\n  Was:      {was}\n" in message.body
    assert f"Times are in {zone}." in message.body
    assert "01:00" not in message.subject + message.body  # the UTC time is not shown


# --- 4. staff's own texts -----------------------------------------------------------------------


def test_a_staff_template_replaces_the_file_templates(alice, thalys, book, later):
    MessageTemplate.objects.create(
        event="created", family="email", subject="{{ units }} is yours, {{ member }}",
        body="Booked {{ units }}, {% span start end %}, for {{ purpose }}: {{ links.booking }}",
        html='<p>Booked {{ units }} for <i>{{ purpose }}</i>. <a href="{{ links.booking }}">Open it</a></p>',
    )
    booking = book(alice, later, server=thalys, devices="0-1", purpose=MARKUP)
    [message] = send("created")
    mime = parsed(message)
    span = timezone.localtime(booking.start).strftime("%a %d %b %H:%M")
    assert str(mime["Subject"]).strip() == "thalys:0-1 is yours, Alice Liddell"
    assert part(mime, "text/plain").startswith(f"Booked thalys:0-1, {span}–")
    assert part(mime, "text/plain").endswith(f"for {MARKUP}: {SITE}/bookings/{booking.pk}/")
    assert part(mime, "text/html") == (
        "<p>Booked thalys:0-1 for <i>&lt;script&gt;alert(&quot;hi&quot;)&lt;/script&gt; &amp; &lt;b&gt;resnet&lt;/b&gt;</i>. "
        f'<a href="{SITE}/bookings/{booking.pk}/">Open it</a></p>'
    )
    assert part(mime, "text/calendar") is not None  # the .ics does not depend on the texts


# Each documented variable, the event that has it, and what it shows for the booking below
# (alice's thalys:0-1, Wed 15 Jan 2031 10:00–12:00 JST, moved by stella to end at 13:00).
DOCUMENTED = {
    "changed": {
        "event": "booking changed", "member": "Alice Liddell", "user": "alice", "booking.pk": "{pk}",
        "owner": "Alice Liddell", "units": "thalys:0-1", "start": "Wed 15 Jan 10:00", "end": "Wed 15 Jan 13:00",
        "before_start": "Wed 15 Jan 10:00", "before_end": "Wed 15 Jan 12:00", "purpose": PURPOSE, "actor": "stella",
        "by_someone_else": "True", "you_hold": "True", "you_did": "False", "holder": "you", "Holder": "You", "holders": "your",
        "Holders": "Your", "own": "your", "doer": "stella", "Doer": "stella", "server": "thalys", "server_name": "thalys", "time_zone": "Asia/Tokyo",
        "links.booking": f"{SITE}/bookings/{{pk}}/", "links.extend": f"{SITE}/bookings/{{pk}}/#extend",
        "links.release": f"{SITE}/bookings/{{pk}}/#release", "links.mine": f"{SITE}/mine/", "links.book": f"{SITE}/book/",
        "links.profile": f"{SITE}/profile/", "links.gpus": f"{SITE}/gpus/",
    },
    "followed": {"next_booking.what": "thalys:0-1", "next_units": "thalys:0-1", "next_owner": "bob"},
    "idle_booking": {"alert.message": "thalys:0-1 looks idle.", "alert_message": "thalys:0-1 looks idle."},
    # alice's weekly series from that Wednesday, 3 times; bob holds the second date, which is skipped.
    "series_created": {
        "rule": "every week on Wednesday at 10:00 (Asia/Tokyo), 3 times", "dates.1.0": "Wed 29 Jan 10:00",
        "skipped.0.2": "GPUs 0-1 on thalys are booked by bob from Wed 22 Jan 10:00 to 12:00 JST.",
    },
    "series_cancelled": {"running.0.0": "Wed 15 Jan 10:00", "dates.0.0": "Wed 29 Jan 10:00"},
    "declined": {"reason": "Reserved for the deadline.", "links.decide": f"{SITE}/bookings/{{pk}}/decide/"},
}
FILTERS = {"start": "|when", "end": "|when", "before_start": "|when", "before_end": "|when", "dates.1.0": "|when", "dates.0.0": "|when", "running.0.0": "|when"}


def test_every_documented_variable_is_checked_below():
    checked = {name.split(".")[0] for names in DOCUMENTED.values() for name in names}
    checked |= {"entry", "length", "expires", "why"}  # the waitlist's: tests/reservations/test_waitlist.py
    assert checked == set(VARIABLES)


@pytest.mark.usefixtures("bookable_in_2031")
@pytest.mark.parametrize("event", DOCUMENTED)
def test_a_staff_template_can_use_the_documented_variables(alice, bob, staff, thalys, event):
    variables = DOCUMENTED[event]
    body = "\n".join(f"{name}=[{{{{ {name}{FILTERS.get(name, '')} }}}}]" for name in variables)
    MessageTemplate.objects.create(event=event, family="email", subject="{{ event }}", body=body)
    alice.profile.time_zone = "Asia/Tokyo"
    alice.profile.save()
    start = datetime(2031, 1, 15, 1, 0, tzinfo=UTC)
    if event == "declined":
        thalys.requires_approval = True
        thalys.save()
    if event.startswith("series"):
        booking = _series(alice, bob, staff, thalys, start, cancel=event == "series_cancelled")
    else:
        booking = services.create_booking(alice, start=start, end=start + timedelta(hours=2), purpose=PURPOSE, server=thalys, devices="0-1")
    if event == "changed":
        services.change_booking(booking, by=staff, end=start + timedelta(hours=3))
    elif event == "declined":
        services.decline_booking(booking, by=staff, reason="Reserved for the deadline.")
    elif event == "followed":
        services.create_booking(bob, start=booking.end, end=booking.end + timedelta(hours=1), server=thalys, devices="0-1")
    elif not event.startswith("series"):
        Alert.objects.create(
            kind=event, key=f"idle:{booking.pk}", server=thalys, booking=booking, user=alice,
            message="thalys:0-1 looks idle.", opened_at=start, last_seen_at=start,
        )
    [message] = send(event)
    shown = dict(re.findall(r"^(\S+)=\[(.*)\]$", message.body, re.MULTILINE))
    assert shown == {name: value.format(pk=booking.pk) for name, value in variables.items()}


def _series(alice, bob, staff, thalys, start, *, cancel):
    """alice's weekly series (3 dates, the second skipped); with `cancel`, staff cancel the rest while the first runs."""
    week = timedelta(weeks=1)
    services.create_booking(bob, start=start + week, end=start + week + timedelta(hours=2), server=thalys, devices="0-1", now=start)
    with timezone.override("Asia/Tokyo"):  # the zone the reason was written in
        result = services.create_series(
            alice, start=start, end=start + timedelta(hours=2), repeat="weekly", count=3, purpose=PURPOSE, server=thalys, devices="0-1",
            on_conflict="skip", now=start,
        )
    if cancel:
        services.cancel_series(result.series, by=staff, now=start + timedelta(minutes=30))
    return result.bookings[0]


# --- 5. a real SMTP server ----------------------------------------------------------------------


class Recorder:
    """An aiosmtpd handler that keeps what it is given; `refuse` maps a command to its answer."""

    def __init__(self, refuse=None):
        self.refuse = refuse or {}
        self.envelopes = []
        self.slow = 0  # seconds between taking a message and answering 250: the sender may die meanwhile

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if "MAIL" in self.refuse:
            return self.refuse["MAIL"]
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if "RCPT" in self.refuse:
            return self.refuse["RCPT"]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if "DATA" in self.refuse:
            return self.refuse["DATA"]
        self.envelopes.append(envelope)
        if self.slow:
            await asyncio.sleep(self.slow)
        return "250 Message accepted for delivery"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp(settings):
    """smtp(port, refuse=...) starts a local SMTP server on `port`; Django's SMTP backend already
    points at `smtp.port` (nothing listens there until it is started)."""
    controllers = []

    def start(refuse=None):
        recorder = Recorder(refuse)
        controller = Controller(recorder, hostname="127.0.0.1", port=start.port)
        controller.start()
        controllers.append(controller)
        return recorder

    start.port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", start.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    yield start
    for controller in controllers:
        controller.stop()


def received(envelope):
    return email.message_from_bytes(envelope.original_content, policy=policy.default)


def test_a_booking_email_is_delivered_once_through_a_real_smtp_server(alice, thalys, book, later, smtp):
    server = smtp()
    booking = book(alice, later, server=thalys, devices="0-1", purpose=PURPOSE)
    assert outbox.sweep() == 1
    assert outbox.sweep() == 0
    [envelope] = server.envelopes
    assert envelope.rcpt_tos == ["alice@lab.example.org"]
    mime = received(envelope)
    assert mime["To"].addresses[0].display_name == "Alice Liddell"
    assert PURPOSE in part(mime, "text/plain") and PURPOSE in part(mime, "text/html")
    [vevent] = calendar_of(mime).walk("VEVENT")
    assert str(vevent["UID"]) == f"booking-{booking.pk}@labres.example.org"
    [row] = rows()
    assert (row.state, row.attempts, row.last_error) == ("sent", 1, "")


def test_an_email_queued_while_the_mail_server_is_down_goes_out_once_when_it_is_back(alice, thalys, book, later, smtp, settings):
    settings.NOTIFY_RETRY_SECONDS = 30
    book(alice, later, server=thalys, devices="0-1")
    now = timezone.now()
    assert outbox.sweep(now=now) == 0
    [row] = rows()
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error.startswith(f"The mail server 127.0.0.1:{smtp.port} could not be reached")
    assert row.next_attempt_at == now + timedelta(seconds=30)
    server = smtp()
    assert outbox.sweep(now=now + timedelta(seconds=29)) == 0 and server.envelopes == []
    assert outbox.sweep(now=now + timedelta(seconds=30)) == 1
    assert outbox.sweep(now=now + timedelta(minutes=30)) == 0
    assert [envelope.rcpt_tos for envelope in server.envelopes] == [["alice@lab.example.org"]]
    row.refresh_from_db()
    assert (row.state, row.attempts, row.last_error) == ("sent", 2, "")


@pytest.mark.celery
@pytest.mark.hands_to_worker
@pytest.mark.django_db(transaction=True)
def test_an_email_sent_again_after_its_worker_died_mid_send_has_the_same_message_id(alice, thalys, later, smtp, start_worker):
    """A worker killed after the mail server took the message but before it answered: the sweep
    sends it again after the lease, with the same Message-ID, so mail servers and clients can
    tell the repeat from a new message."""
    server = smtp()
    server.slow = 30
    services.create_booking(alice, start=later, end=later + timedelta(hours=1), server="thalys", devices="0")
    assert wait_for_hand_overs(timeout=5)
    worker = start_worker(EMAIL_URL=f"smtp://127.0.0.1:{smtp.port}", SITE_URL=SITE)

    if not wait_for(lambda: len(server.envelopes) == 1, timeout=20):
        pytest.fail("the worker sent no e-mail:\n" + worker.output[-3000:])
    worker.process.kill()
    worker.process.wait(timeout=10)
    server.slow = 0
    [row] = Notification.objects.all()
    assert (row.state, row.attempts) == ("sending", 1)
    assert outbox.sweep(now=row.next_attempt_at) == 1

    first, again = (received(envelope) for envelope in server.envelopes)
    assert first["Message-ID"] == again["Message-ID"] == f"<notification-{row.pk}.{row.created_at:%Y%m%dT%H%M%S%f}@labres.example.org>"
    row.refresh_from_db()
    assert (row.state, row.attempts) == ("sent", 2)


def test_each_outbox_row_has_its_own_message_id(alice, thalys, book, later):
    book(alice, later, server=thalys, devices="0")
    book(alice, later, server=thalys, devices="1")
    assert outbox.sweep() == 2
    ids = [message.message()["Message-ID"] for message in mail.outbox]
    assert len(set(ids)) == 2 and all(value.endswith("@labres.example.org>") for value in ids)


def test_a_mailbox_the_server_refuses_fails_at_once(alice, thalys, book, later, smtp):
    server = smtp(refuse={"RCPT": "550 no such user"})
    book(alice, later, server=thalys, devices="0-1")
    assert outbox.sweep() == 0
    [row] = rows()
    assert (row.state, row.attempts) == ("failed", 1)
    assert row.last_error == (
        "The mail server refused alice@lab.example.org (550 no such user); check the member's e-mail address, then retry."
    )
    assert server.envelopes == []


@pytest.mark.parametrize(
    "refuse, state",
    [
        ({"RCPT": "450 mailbox busy"}, "pending"),
        ({"RCPT": "550 no such user"}, "failed"),
        ({"DATA": "451 local error, try again"}, "pending"),
        ({"DATA": "554 message rejected as spam"}, "failed"),
        ({"MAIL": "451 greylisted, try again"}, "pending"),
        ({"MAIL": "553 sender not allowed"}, "failed"),
    ],
    ids=["rcpt-4xx", "rcpt-5xx", "data-4xx", "data-5xx", "mail-4xx", "mail-5xx"],
)
def test_a_4xx_answer_is_retried_and_a_5xx_answer_is_final(alice, thalys, book, later, smtp, refuse, state):
    smtp(refuse=refuse)
    book(alice, later, server=thalys, devices="0-1")
    outbox.sweep()
    [row] = rows()
    [answer] = refuse.values()
    assert (row.state, row.attempts) == (state, 1)
    assert answer in row.last_error


# --- 6. who e-mail can reach --------------------------------------------------------------------


def test_a_member_without_an_address_or_slack_gets_no_row(thalys, later, book):
    carol = UserFactory(username="carol", email="")
    booking = book(carol, later, server=thalys, devices="0-1")
    assert booking.pk and rows() == []


def test_a_member_who_chose_email_but_has_no_address_gets_no_row(thalys, later, book):
    carol = UserFactory(username="carol", email="")
    Preference.objects.create(user=carol, event="created", channels=["email"])
    book(carol, later, server=thalys, devices="0-1")
    assert rows() == []


def test_an_email_whose_recipient_lost_their_address_fails_for_good(alice, thalys, book, later):
    book(alice, later, server=thalys, devices="0-1")
    outbox.expand_due()  # queued while she had one
    alice.email = ""
    alice.save()
    assert outbox.sweep() == 0
    [row] = rows()
    assert (row.state, row.last_error) == ("failed", "alice has no e-mail address.")
    assert mail.outbox == []


def test_an_address_that_cannot_be_written_into_a_header_fails_for_good(alice, thalys, book, later):
    book(alice, later, server=thalys, devices="0-1")
    alice.email = "alice@lab.example.org\nBcc: eve@example.com"
    alice.save()
    outbox.sweep()
    [row] = rows()
    assert row.state == "failed" and row.last_error.startswith("The e-mail to 'alice@lab.example.org\\nBcc: eve@example.com' could not be written")
    assert mail.outbox == []

