"""What members see of notifications on their profile: channels per event, and the Slack link."""
import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages

from notifications import outbox
from notifications.events import MEMBER_EVENTS
from notifications.models import Notification, Preference
from notifications.reminders import send_reminders
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PROFILE = "/profile/"
SAVE = "/profile/notifications/"
LINK = "/profile/slack/link/"
UNLINK = "/profile/slack/unlink/"


def checkbox(page, event, channel):
    """The <input> tag of one cell of the table, as rendered."""
    match = re.search(rf'<input type="checkbox" name="notify-{event}" value="{channel}"[^>]*>', page)
    assert match, f"no checkbox for {event} / {channel}"
    return match.group(0)


def is_ticked(page, event, channel):
    return " checked" in checkbox(page, event, channel)


def shown_choices(client):
    """What the table shows now, as the form would post it back unchanged."""
    form = client.get(PROFILE).context["notify_form"]
    return {f"notify-{row.event}": [cell.channel for cell in row.cells if cell.checked] for row in form.rows()}


def said(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


def queued(**filters):
    """The rows queued, once the events are expanded as a worker does after commit."""
    outbox.expand_due()
    return Notification.objects.filter(**filters)


def link_slack(user, slack_id):
    user.profile.slack_user_id = slack_id
    user.profile.save()


# --- the table ----------------------------------------------------------------------------


def test_a_member_without_slack_sees_email_ticked_by_default(client, alice):
    client.force_login(alice)

    page = client.get(PROFILE).content.decode()

    assert is_ticked(page, "created", "email")
    assert not is_ticked(page, "created", "slack_dm")
    assert not is_ticked(page, "ended", "email")  # off by default


def test_a_linked_member_sees_slack_ticked_by_default(client, alice, settings):
    settings.SLACK_BOT_TOKEN = "xoxb-test"
    link_slack(alice, "U0ALICE")
    client.force_login(alice)

    page = client.get(PROFILE).content.decode()

    assert is_ticked(page, "ends_soon", "slack_dm")
    assert not is_ticked(page, "ends_soon", "email")
    assert "disabled" not in checkbox(page, "ends_soon", "slack_dm")


def test_the_table_shows_a_saved_choice_over_the_default(client, alice):
    Preference.objects.create(user=alice, event="created", channels=[])
    Preference.objects.create(user=alice, event="ended", channels=["email"])
    client.force_login(alice)

    page = client.get(PROFILE).content.decode()

    assert not is_ticked(page, "created", "email")
    assert is_ticked(page, "ended", "email")


def test_every_checkbox_has_a_label(client, alice):
    client.force_login(alice)

    page = client.get(PROFILE).content.decode()

    ids = re.findall(r'<input type="checkbox" name="notify-[^"]+" value="[^"]+" id="([^"]+)"', page)
    assert len(ids) == 2 * len(MEMBER_EVENTS)
    for checkbox_id in ids:
        assert f'<label for="{checkbox_id}">' in page


def test_slack_is_disabled_until_the_member_links_it(client, alice, settings):
    settings.SLACK_BOT_TOKEN = "xoxb-test"
    client.force_login(alice)

    page = client.get(PROFILE).content.decode()

    assert "disabled" in checkbox(page, "created", "slack_dm")
    assert "link your Slack account first" in page


def test_slack_is_disabled_when_the_lab_has_no_slack(client, alice, settings):
    settings.SLACK_BOT_TOKEN = ""
    link_slack(alice, "U0ALICE")
    client.force_login(alice)

    page = client.get(PROFILE).content.decode()

    assert "disabled" in checkbox(page, "created", "slack_dm")
    assert "Slack is not set up in this lab" in page
    assert "Find my Slack account" not in page


def test_email_is_disabled_for_a_member_without_an_address(client):
    member = UserFactory(username="noaddress", email="")
    client.force_login(member)

    page = client.get(PROFILE).content.decode()

    assert "disabled" in checkbox(page, "created", "email")
    assert "add an e-mail address" in page


def test_only_staff_choose_channels_for_stale_hosts(client, alice, staff):
    client.force_login(alice)
    assert 'name="notify-host_stale"' not in client.get(PROFILE).content.decode()

    client.force_login(staff)
    assert is_ticked(client.get(PROFILE).content.decode(), "host_stale", "email")


# --- saving --------------------------------------------------------------------------------


def test_unticking_an_event_stops_its_messages(client, alice, thalys, book, later):
    client.force_login(alice)
    choices = {**shown_choices(client), "notify-created": []}

    response = client.post(SAVE, choices)

    assert response.status_code == 302
    assert "Notification choices saved." in said(response)
    book(alice, later, server=thalys, devices="0")
    assert not queued(recipient=alice, event="created").exists()


def test_ticking_an_event_that_is_off_by_default_turns_it_on(client, alice, thalys, book, later):
    client.force_login(alice)
    client.post(SAVE, {**shown_choices(client), "notify-ended": ["email"]})
    booking = book(alice, later, server=thalys, devices="0")

    send_reminders(now=booking.end + timedelta(minutes=1))

    assert list(queued(recipient=alice, event="ended").values_list("channel", flat=True)) == ["email"]


def test_ticking_both_channels_sends_both(client, alice, thalys, book, later, settings):
    settings.SLACK_BOT_TOKEN = "xoxb-test"
    link_slack(alice, "U0ALICE")
    client.force_login(alice)
    client.post(SAVE, {**shown_choices(client), "notify-created": ["slack_dm", "email"]})

    book(alice, later, server=thalys, devices="0")

    assert sorted(queued(recipient=alice, event="created").values_list("channel", flat=True)) == ["email", "slack_dm"]


def test_saving_writes_only_the_rows_the_member_changed(client, alice):
    client.force_login(alice)

    client.post(SAVE, {**shown_choices(client), "notify-followed": []})

    assert list(Preference.objects.filter(user=alice).values_list("event", "channels")) == [("followed", [])]


def test_untouched_events_follow_the_default_once_slack_is_linked(client, alice, thalys, book, later, settings):
    settings.SLACK_BOT_TOKEN = "xoxb-test"
    client.force_login(alice)
    client.post(SAVE, {**shown_choices(client), "notify-followed": []})
    link_slack(alice, "U0ALICE")

    book(alice, later, server=thalys, devices="0")

    assert list(queued(recipient=alice, event="created").values_list("channel", flat=True)) == ["slack_dm"]


def test_a_slack_choice_survives_saving_while_unlinked(client, alice, settings):
    settings.SLACK_BOT_TOKEN = "xoxb-test"
    Preference.objects.create(user=alice, event="ends_soon", channels=["slack_dm"])
    client.force_login(alice)
    assert not is_ticked(client.get(PROFILE).content.decode(), "ends_soon", "slack_dm")  # it cannot reach her now

    client.post(SAVE, {**shown_choices(client), "notify-followed": []})
    link_slack(alice, "U0ALICE")

    assert Preference.objects.get(user=alice, event="ends_soon").channels == ["slack_dm"]
    assert is_ticked(client.get(PROFILE).content.decode(), "ends_soon", "slack_dm")


def test_choosing_a_channel_that_cannot_reach_the_member_is_refused(client, alice, settings):
    settings.SLACK_BOT_TOKEN = "xoxb-test"
    client.force_login(alice)

    response = client.post(SAVE, {**shown_choices(client), "notify-created": ["slack_dm", "email"]})

    assert response.status_code == 400
    page = response.content.decode()
    assert "Slack direct message cannot reach you: link your Slack account first." in page
    assert not Preference.objects.exists()


def test_an_unknown_channel_is_refused(client, alice):
    client.force_login(alice)

    response = client.post(SAVE, {"notify-created": ["pigeon"]})

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Preference.objects.exists()


def test_a_member_cannot_choose_channels_for_stale_hosts(client, alice):
    client.force_login(alice)

    client.post(SAVE, {**shown_choices(client), "notify-host_stale": ["email"]})

    assert not Preference.objects.filter(event="host_stale").exists()


def test_saving_needs_a_signed_in_member(client):
    response = client.post(SAVE, {"notify-created": ["email"]})

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not Preference.objects.exists()


# --- the Slack link ------------------------------------------------------------------------


def test_find_my_slack_account_links_the_member(client, alice, fake_slack):
    fake_slack.users_by_email["alice@lab.example.org"] = "U0ALICE"
    client.force_login(alice)

    response = client.post(LINK)

    assert response.status_code == 302
    alice.profile.refresh_from_db()
    assert alice.profile.slack_user_id == "U0ALICE"
    assert [call.body["email"] for call in fake_slack.calls("users.lookupByEmail")] == ["alice@lab.example.org"]
    assert any("Linked to your Slack account (U0ALICE)" in text for text in said(response))
    page = client.get(PROFILE).content.decode()
    assert "<code>U0ALICE</code>" in page and "Unlink" in page


def test_find_my_slack_account_says_when_slack_does_not_know_the_address(client, alice, fake_slack):
    client.force_login(alice)

    response = client.post(LINK)

    assert any("Slack knows no account with alice@lab.example.org" in text for text in said(response))
    alice.profile.refresh_from_db()
    assert alice.profile.slack_user_id == ""


def test_find_my_slack_account_says_when_slack_is_not_set_up(client, alice, settings):
    settings.SLACK_BOT_TOKEN = ""
    client.force_login(alice)

    response = client.post(LINK)

    assert response.status_code == 302
    assert any("Slack is not set up here" in text for text in said(response))


def test_find_my_slack_account_reports_a_slack_error(client, alice, fake_slack):
    fake_slack.answer_next(200, {"ok": False, "error": "invalid_auth"}, path="/api/users.lookupByEmail")
    client.force_login(alice)

    response = client.post(LINK)

    assert response.status_code == 302
    assert any("Could not link Slack: Slack answered 200: invalid_auth." in text for text in said(response))


def test_find_my_slack_account_survives_slack_answering_500(client, alice, fake_slack):
    fake_slack.answer_next(500, path="/api/users.lookupByEmail")
    client.force_login(alice)

    response = client.post(LINK)

    assert response.status_code == 302
    assert any(text.startswith("Could not link Slack:") for text in said(response))


def test_a_slack_account_linked_to_another_member_is_refused(client, alice, bob, fake_slack):
    link_slack(bob, "U0SHARED")
    fake_slack.users_by_email["alice@lab.example.org"] = "U0SHARED"
    client.force_login(alice)

    response = client.post(LINK)

    assert response.status_code == 302
    assert any("already linked to another member" in text for text in said(response))
    alice.profile.refresh_from_db()
    assert alice.profile.slack_user_id == ""


def test_unlink_clears_the_slack_id_and_names_events_left_without_a_channel(client, alice, settings):
    settings.SLACK_BOT_TOKEN = "xoxb-test"
    link_slack(alice, "U0ALICE")
    Preference.objects.create(user=alice, event="ends_soon", channels=["slack_dm"])
    client.force_login(alice)

    response = client.post(UNLINK)

    alice.profile.refresh_from_db()
    assert alice.profile.slack_user_id == ""
    [text] = said(response)
    assert text.startswith("Slack unlinked") and "booking ends soon" in text
    assert "Find my Slack account" in client.get(PROFILE).content.decode()
