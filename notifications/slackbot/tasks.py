"""Answers to Slack that take longer than Slack's 3 seconds: run in a worker, posted through the
response_url Slack gave with the command (valid for 30 minutes, up to 5 answers)."""
import logging

from celery import shared_task
from django.conf import settings
from slack_sdk.webhook import WebhookClient

from ..messages import slack_escape

logger = logging.getLogger(__name__)


def safe_reply(handle, *args, **kwargs):
    """What a handler answers, or an ephemeral "Something went wrong" if it raised: never a 500."""
    from . import commands

    try:
        return handle(*args, **kwargs)
    except Exception as error:
        logger.exception("slack handler %s failed", getattr(handle, "__name__", handle))
        return commands.Reply(text=f"Something went wrong: {slack_escape(error)}. Please try again, or tell the lab's staff.", refused=True)


def run_command(text, slack_user_id):
    """The reply to a slash command's text, whatever happens."""
    from . import commands

    return safe_reply(commands.handle_command, text, slack_user_id=slack_user_id)


def run_action(action_id, value, slack_user_id, *, press=None):
    """The reply to a button, whatever happens. A `press` (replays.button_press) acts once: the same
    button pressed again on the same message by the same member is answered, not acted on."""
    from . import commands, replays

    if press is not None and not replays.first_time("button", *press, seconds=replays.BUTTON_MEMORY_SECONDS):
        return commands.pressed_again(action_id, value)
    reply = safe_reply(commands.handle_action, action_id, value, slack_user_id=slack_user_id)
    if press is not None and reply.refused:
        replays.forget("button", *press)  # it did nothing: pressing it again may work (a conflict gone)
    return reply


def post_to_response_url(response_url, reply, *, replace_original=None):
    """Post a Reply through a response_url; False (logged) if Slack refused it or could not be reached."""
    message = reply.as_slack()
    client = WebhookClient(response_url, timeout=settings.NOTIFY_HTTP_TIMEOUT)
    try:
        response = client.send(
            text=message.get("text"), blocks=message.get("blocks"),
            response_type=message.get("response_type"), replace_original=replace_original,
        )
    except Exception as error:  # Slack unreachable: the member sees no answer, staff see the log
        logger.warning("could not answer through response_url: %s", error)
        return False
    if response.status_code != 200:
        logger.warning("response_url answered %s: %s", response.status_code, response.body)
        return False
    return True


@shared_task(name="notifications.slackbot.tasks.answer_command", ignore_result=True)
def answer_command(text, slack_user_id, response_url):
    """Run a slow slash command (status, realtime) and post its reply through response_url."""
    return post_to_response_url(response_url, run_command(text, slack_user_id))
