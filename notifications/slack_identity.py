"""A member's Slack id, found from their e-mail through users.lookupByEmail."""
import logging
from http.client import HTTPException

from django.contrib.auth import get_user_model
from slack_sdk.errors import SlackApiError, SlackRequestError

from reservations.models import Profile

from .channels import slack_client

logger = logging.getLogger(__name__)


class SlackLookupError(Exception):
    pass


def lookup_slack_id(email, client=None):
    """The Slack user id for an e-mail address, or None when Slack knows no such user."""
    client = client or slack_client()
    if client is None:
        raise SlackLookupError("Slack is not set up here (no SLACK_BOT_TOKEN).")
    try:
        response = client.users_lookupByEmail(email=email)
    except SlackApiError as error:
        code = error.response.get("error") if isinstance(error.response.data, dict) else None
        if code == "users_not_found":
            return None
        raise SlackLookupError(f"Slack answered {error.response.status_code}: {code or 'error'}.") from None
    except (OSError, HTTPException, SlackRequestError) as error:
        raise SlackLookupError(f"Slack could not be reached: {error}.") from None
    user = response["user"]
    # A deactivated account (or a bot sharing the address) would take every direct message and
    # answer none: leave the member on e-mail.
    if user.get("deleted") or user.get("is_bot"):
        return None
    return user["id"]


def link_member(user, client=None):
    """Look up and store one member's Slack id; returns it, or None when Slack does not know their e-mail."""
    if not user.email:
        return None
    slack_id = lookup_slack_id(user.email, client)
    if slack_id:
        Profile.objects.filter(user=user).update(slack_user_id=slack_id)
    return slack_id


def link_members():
    """Link every active member with an e-mail and no Slack id yet; returns how many were linked."""
    client = slack_client()
    if client is None:
        return 0
    linked = 0
    unlinked = get_user_model().objects.filter(is_active=True, profile__slack_user_id="").exclude(email="")
    for user in unlinked:
        try:
            linked += bool(link_member(user, client))
        except SlackLookupError as error:
            logger.warning("linking %s to Slack stopped: %s", user.get_username(), error)
            break  # Slack is down or the token is wrong: try again next run
    return linked
