"""Linking a Slack account to a labres member: checks, Slack's profile e-mail, and the e-mailed confirmation."""
from http.client import HTTPException

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.mail import send_mail
from django.urls import reverse
from slack_sdk.errors import SlackApiError, SlackRequestError

from reservations.models import Profile

from ..channels import slack_client

SALT = "labres.slack-link"
MAX_AGE = 24 * 3600  # a confirmation link works for a day


class LinkError(Exception):
    """A link that cannot be made; str(error) is the reply."""


def member_with_email(email):
    """The active member with this e-mail (case ignored); LinkError if none or several."""
    members = list(get_user_model().objects.filter(is_active=True, email__iexact=email.strip())[:2])
    if len(members) != 1:
        raise LinkError(f"No labres member has the e-mail '{email}'; use the address of your labres account.")
    return members[0]


def check_free(member, slack_user_id):
    """Refuse a Slack id another member is linked to already."""
    other = Profile.objects.filter(slack_user_id=slack_user_id).exclude(user=member).select_related("user").first()
    if other is not None:
        raise LinkError(f"This Slack account is already linked to {other.user.get_username()}; ask staff to change it.")


def set_slack_id(member, slack_user_id):
    check_free(member, slack_user_id)
    Profile.objects.filter(user=member).update(slack_user_id=slack_user_id)


def slack_email_of(slack_user_id):
    """The e-mail on the caller's Slack profile, or '' when Slack is not set up or does not say."""
    client = slack_client()
    if client is None:
        return ""
    try:
        response = client.users_info(user=slack_user_id)
    except (SlackApiError, SlackRequestError, OSError, HTTPException, ValueError):
        return ""
    return ((response.get("user") or {}).get("profile") or {}).get("email") or ""


def confirmation_url(member, slack_user_id):
    token = signing.dumps({"user": member.pk, "slack": slack_user_id}, salt=SALT)
    return settings.SITE_URL + reverse("slack-link-confirm", args=[token])


def mail_confirmation(member, slack_user_id):
    url = confirmation_url(member, slack_user_id)
    send_mail(
        "Link your Slack account to labres",
        f"Someone asked to link the Slack account {slack_user_id} to your labres account {member.get_username()}.\n\n"
        f"If it was you, open this link within a day and confirm:\n{url}\n\nIf not, ignore this message.",
        None,
        [member.email],
    )


def read_token(token):
    """(member, slack id) from a confirmation token; LinkError if it is bad or older than a day."""
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE)
    except signing.SignatureExpired:
        raise LinkError("This link has expired; ask for a new one with /gpu link you@lab.org.") from None
    except signing.BadSignature:
        raise LinkError("This link is not valid; ask for a new one with /gpu link you@lab.org.") from None
    member = get_user_model().objects.filter(pk=data.get("user"), is_active=True).first()
    if member is None:
        raise LinkError("The account this link was for no longer exists.")
    return member, data.get("slack", "")
