"""Slack finds members by e-mail; members made by single sign-on have the e-mail their directory gives, so
linking works for them as for anyone: the profile page's "Find my Slack account" and `/gpu link`."""
import pytest
from django.test import Client

from notifications.slackbot.commands import handle_command
from reservations.models import Profile
from tests.notifications.conftest import fake_slack  # noqa: F401 -- a local Slack

from .test_oidc import Member

pytestmark = pytest.mark.django_db


def test_a_directory_member_finds_their_slack_account_by_the_directory_email(directory, fake_slack):  # noqa: F811
    fake_slack.users_by_email["alice@lab.example"] = "U0ALICE"
    client = Client()
    assert client.post("/accounts/login/", {"username": "alice", "password": "alice-password"}).status_code == 302

    client.post("/profile/slack/link/")

    assert Profile.objects.get(user__username="alice").slack_user_id == "U0ALICE"
    assert [call.body["email"] for call in fake_slack.calls("users.lookupByEmail")] == ["alice@lab.example"]


def test_a_member_of_the_openid_provider_links_with_the_slash_command(client, start_provider, fake_slack, later):  # noqa: F811
    Member(client, start_provider()).sign_in("olivia")
    fake_slack.emails_by_id["U0OLIVIA"] = "olivia@lab.example"

    reply = handle_command("link olivia@lab.example", slack_user_id="U0OLIVIA", now=later)

    assert reply.text.startswith("Linked: you are olivia"), reply.text
    assert Profile.objects.get(user__username="olivia").slack_user_id == "U0OLIVIA"
