"""The notifications admin: the outbox (filters, retry, send now), destinations, message templates."""
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from notifications import outbox
from notifications.models import Destination, MessageTemplate, Notification, OutboxEvent, Preference
from reservations import services

pytestmark = pytest.mark.django_db

OUTBOX = "/admin/notifications/notification/"
DESTINATIONS = "/admin/notifications/destination/"
TEMPLATES = "/admin/notifications/messagetemplate/"


@pytest.fixture
def webhook(thalys):
    return Destination.objects.create(name="#thalys", kind="slack_webhook", webhook_url="https://hooks.example.org/services/T/B/x", server=thalys)


@pytest.fixture
def services_book(db):
    """Books through the service layer, leaving the booking's event pending (no worker in tests)."""

    def book(user, start, hours=1, purpose="work", **target):
        return services.create_booking(user, start=start, end=start + timedelta(hours=hours), purpose=purpose, **target)

    return book


@pytest.fixture
def book(services_book):
    """Books, then expands the booking's events as a worker does after commit (tests run in one transaction)."""

    def book_and_expand(*args, **kwargs):
        booking = services_book(*args, **kwargs)
        outbox.expand_due()
        return booking

    return book_and_expand


def said(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


def act(client, url, action, rows):
    return client.post(url, {"action": action, "_selected_action": [row.pk for row in rows]}, follow=True)


# --- access --------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [OUTBOX, DESTINATIONS, TEMPLATES, "/admin/notifications/preference/"])
def test_members_cannot_open_the_notifications_admin(client, alice, url):
    client.force_login(alice)

    response = client.get(url)

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_without_permissions_cannot_open_the_outbox(client, staff):
    client.force_login(staff)

    assert client.get(OUTBOX).status_code == 403


# --- the outbox ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["", "?state__exact=failed", "?state__exact=pending", "?channel=email", "?event__exact=created", "?q=alice", "?q=%23thalys", "?created_at__year=2020"],
)
def test_outbox_changelist_loads_with_each_filter(staff_client, alice, thalys, webhook, book, later, query):
    book(alice, later, server=thalys, devices="0")

    response = staff_client.get(OUTBOX + query)

    assert response.status_code == 200


def test_outbox_filters_by_state(staff_client, alice, thalys, book, later):
    book(alice, later, server=thalys, devices="0", purpose="first")
    book(alice, later + timedelta(hours=2), server=thalys, devices="0", purpose="second")
    failed = Notification.objects.order_by("pk").first()
    Notification.objects.filter(pk=failed.pk).update(state="failed", last_error="The mail server refused: 550 no such user")

    response = staff_client.get(OUTBOX + "?state__exact=failed")

    assert list(response.context["cl"].result_list) == [failed]
    assert "550 no such user" in response.content.decode()


def test_outbox_changelist_queries_do_not_grow_with_rows(staff_client, alice, bob, thalys, webhook, book, later):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get(OUTBOX).status_code == 200
        return len(captured)

    book(alice, later, server=thalys, devices="0")
    with_two = queries()
    for hour in range(1, 5):
        book(alice if hour % 2 else bob, later + timedelta(hours=3 * hour), server=thalys, devices="1")
    with_ten = queries()

    assert Notification.objects.count() == 10
    assert with_ten == with_two


def test_outbox_detail_is_read_only_and_shows_the_payload(staff_client, alice, thalys, book, later):
    book(alice, later, server=thalys, devices="0", purpose="training resnet")
    row = Notification.objects.get()

    response = staff_client.get(reverse("admin:notifications_notification_change", args=[row.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "&quot;subject&quot;: &quot;" in page and "training resnet" in page
    assert 'name="_save"' not in page


def test_outbox_rows_cannot_be_added_by_hand(staff_client):
    assert staff_client.get("/admin/notifications/notification/add/").status_code == 403


def test_retry_now_makes_a_failed_row_due_with_fresh_attempts(staff_client, alice, thalys, book, later):
    book(alice, later, server=thalys, devices="0")
    Notification.objects.update(state="failed", attempts=8, last_error="mail server down", next_attempt_at=later)
    row = Notification.objects.get()

    response = act(staff_client, OUTBOX, "retry_now", [row])

    row.refresh_from_db()
    assert (row.state, row.attempts, row.last_error) == ("pending", 0, "")
    assert row.next_attempt_at < later
    assert "1 notification will be sent again now, with a fresh count of attempts." in said(response)


def test_retry_now_leaves_sent_rows_alone(staff_client, alice, thalys, book, later):
    book(alice, later, server=thalys, devices="0")
    Notification.objects.update(state="sent", attempts=1)
    row = Notification.objects.get()

    response = act(staff_client, OUTBOX, "retry_now", [row])

    row.refresh_from_db()
    assert (row.state, row.attempts) == ("sent", 1)
    assert "0 notifications will be sent again now, with a fresh count of attempts. 1 notification already sent left alone." in said(response)


def test_send_due_now_sends_a_pending_row(staff_client, alice, thalys, book, later):
    book(alice, later, server=thalys, devices="0")
    row = Notification.objects.get()

    response = act(staff_client, OUTBOX, "send_due_now", [row])

    row.refresh_from_db()
    assert row.state == "sent"
    assert len(mail.outbox) == 1
    assert "Sent 1 of 1." in said(response)


def test_send_due_now_does_not_send_a_failed_row(staff_client, alice, thalys, book, later):
    book(alice, later, server=thalys, devices="0")
    Notification.objects.update(state="failed")
    row = Notification.objects.get()

    response = act(staff_client, OUTBOX, "send_due_now", [row])

    assert mail.outbox == []
    assert any(text.startswith("Sent 0 of 1.") for text in said(response))


# --- outbox events ------------------------------------------------------------------------

EVENTS = "/admin/notifications/outboxevent/"


@pytest.mark.parametrize("query", ["", "?state__exact=pending", "?state__exact=expanded", "?event__exact=created", "?q=created"])
def test_events_changelist_loads_with_each_filter(staff_client, alice, thalys, book, later, query):
    book(alice, later, server=thalys, devices="0")

    response = staff_client.get(EVENTS + query)

    assert response.status_code == 200


def test_events_filter_by_state(staff_client, alice, thalys, services_book, later):
    waiting = services_book(alice, later, server=thalys, devices="0")
    services_book(alice, later + timedelta(hours=2), server=thalys, devices="0")
    OutboxEvent.objects.exclude(booking=waiting).update(state="expanded")

    response = staff_client.get(EVENTS + "?state__exact=pending")

    assert [event.booking for event in response.context["cl"].result_list] == [waiting]


def test_expand_now_expands_a_failed_event_and_sends_its_messages(staff_client, alice, thalys, services_book, later):
    services_book(alice, later, server=thalys, devices="0")
    OutboxEvent.objects.update(attempts=3, last_error="ValueError: template bug", next_attempt_at=later)
    event = OutboxEvent.objects.get()

    response = act(staff_client, EVENTS, "expand_now", [event])

    event.refresh_from_db()
    assert (event.state, event.attempts, event.last_error) == ("expanded", 1, "")
    assert Notification.objects.get().state == "sent" and len(mail.outbox) == 1
    assert "Expanded 1 of 1 event into 1 notification; sent 1." in said(response)


def test_events_cannot_be_added_by_hand(staff_client):
    assert staff_client.get(EVENTS + "add/").status_code == 403


# --- destinations --------------------------------------------------------------------------


def test_destination_changelist_shows_scope_and_kind(staff_client, webhook):
    Destination.objects.create(name="#lab", kind="slack_channel", channel="C0LAB")

    page = staff_client.get(DESTINATIONS).content.decode()

    assert "server thalys" in page and "the whole lab" in page
    assert "Slack incoming webhook" in page and "Slack channel (bot)" in page


def test_a_destination_is_added_with_chosen_events(staff_client, thalys):
    data = {"name": "#thalys", "kind": "slack_webhook", "webhook_url": "https://hooks.example.org/services/T/B/y", "channel": "",
            "server": thalys.pk, "room": "", "events": ["created", "cancelled"], "active": "on"}

    response = staff_client.post("/admin/notifications/destination/add/", data)

    assert response.status_code == 302
    assert Destination.objects.get().events == ["created", "cancelled"]


def test_a_webhook_destination_without_its_url_is_refused(staff_client):
    data = {"name": "#x", "kind": "slack_webhook", "webhook_url": "", "channel": "", "server": "", "room": "", "active": "on"}

    response = staff_client.post("/admin/notifications/destination/add/", data)

    assert response.status_code == 200
    assert "A webhook destination needs its URL" in response.content.decode()
    assert not Destination.objects.exists()


def test_send_a_test_message_posts_to_the_webhook(staff_client, fake_slack, thalys):
    destination = Destination.objects.create(name="#thalys", kind="slack_webhook", webhook_url=fake_slack.webhook_url(), server=thalys)

    response = act(staff_client, DESTINATIONS, "send_test_message", [destination])

    [message] = fake_slack.messages()
    assert "A test message from labres, sent by root" in message["text"]
    assert "#thalys: test message sent." in said(response)
    assert Notification.objects.get().state == "sent"


def test_send_a_test_message_reports_a_webhook_that_is_gone(staff_client, fake_slack, thalys):
    destination = Destination.objects.create(name="#thalys", kind="slack_webhook", webhook_url=fake_slack.webhook_url(), server=thalys)
    fake_slack.answer_next(404)

    response = act(staff_client, DESTINATIONS, "send_test_message", [destination])

    assert "#thalys: the test message failed: The webhook answered 404: no_service" in said(response)
    assert Notification.objects.get().state == "failed"


# --- message templates ---------------------------------------------------------------------


def template_data(**fields):
    return {"event": "created", "family": "email", "subject": "", "body": "Booked {{ units }}.", "html": "", **fields}


def test_the_template_form_lists_the_variables(staff_client):
    page = staff_client.get("/admin/notifications/messagetemplate/add/").content.decode()

    assert "<code>{{ units }}</code>" in page
    assert "Absolute links: links.booking" in page


def test_a_template_that_renders_is_saved(staff_client):
    response = staff_client.post("/admin/notifications/messagetemplate/add/", template_data(subject="[lab] {{ units }} {% span start end %}", html="<p>{{ text }}</p>"))

    assert response.status_code == 302
    assert MessageTemplate.objects.get().subject.startswith("[lab]")


@pytest.mark.parametrize(
    "field, source, message",
    [
        ("body", "{% if booking %}Booked {{ units }}.", "This is not a valid template: Unclosed tag"),
        ("subject", "{{ units|nosuchfilter }}", "This is not a valid template: Invalid filter: &#x27;nosuchfilter&#x27;"),
        ("html", "<p>{% endblock %}</p>", "This is not a valid template: Invalid block tag"),
        ("body", "{% span purpose end %}", "This fails to render for a member&#x27;s message about a sample booking"),
    ],
)
def test_a_template_that_does_not_compile_or_render_is_refused(staff_client, field, source, message):
    response = staff_client.post("/admin/notifications/messagetemplate/add/", template_data(**{field: source}))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert response.context["adminform"].form.errors[field]
    assert not MessageTemplate.objects.exists()


@pytest.mark.parametrize("event", ["changed", "followed", "idle_booking", "unbooked_use", "host_stale"])
def test_templates_for_each_kind_of_event_are_tried_on_a_fitting_sample(staff_client, event):
    body = "{{ event }} {{ member }} {{ units }} {{ alert.message }} {{ next_owner }} {% if before_start %}{% span before_start before_end %}{% endif %}"

    response = staff_client.post("/admin/notifications/messagetemplate/add/", template_data(event=event, family="slack", body=body))

    assert response.status_code == 302


def test_a_slack_template_with_a_subject_is_refused(staff_client):
    response = staff_client.post("/admin/notifications/messagetemplate/add/", template_data(family="slack", subject="{{ units }}"))

    assert response.status_code == 200
    assert "Slack messages have only a text" in response.content.decode()


# --- preferences ---------------------------------------------------------------------------


def test_preference_changelist_lists_members_choices(staff_client, alice):
    Preference.objects.create(user=alice, event="ends_soon", channels=["slack_dm", "email"])

    page = staff_client.get("/admin/notifications/preference/").content.decode()

    assert "slack_dm, email" in page and "alice" in page


def test_staff_set_a_members_channels_with_checkboxes(staff_client, alice):
    response = staff_client.post("/admin/notifications/preference/add/", {"user": alice.pk, "event": "ended", "channels": ["email"]})

    assert response.status_code == 302
    assert Preference.objects.get(user=alice, event="ended").channels == ["email"]


def test_the_member_page_shows_the_slack_id(staff_client, alice):
    alice.profile.slack_user_id = "U0ALICE"
    alice.profile.save()

    page = staff_client.get(reverse("admin:auth_user_change", args=[alice.pk])).content.decode()

    assert 'value="U0ALICE"' in page
