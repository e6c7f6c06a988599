"""Answers to Slack that take longer than Slack's 3 seconds: run in a worker, posted through the
response_url Slack gave with the command or button (valid for 30 minutes, up to 5 answers).

The endpoints acknowledge first and hand the work over with labres.celery.enqueue_after_commit: to a
Celery worker, or, when the broker cannot take it, to a thread of the web process (answer_here).
Neither makes Slack wait.
"""
import logging
import threading

from celery import shared_task
from django.conf import settings
from django.db import connections
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
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

    # Held while it acts (a second copy is answered, not acted on); kept for a day once it did its
    # work; forgotten if it did nothing. A worker that dies mid-action leaves it held only briefly.
    if press is not None and not replays.first_time("button", *press, seconds=replays.ACTING_SECONDS):
        return commands.pressed_again(action_id, value)
    reply = safe_reply(commands.handle_action, action_id, value, slack_user_id=slack_user_id)
    if press is not None and reply.refused:
        replays.forget("button", *press)  # it did nothing: pressing it again may work (a conflict gone)
    elif press is not None:
        replays.keep("button", *press, seconds=replays.BUTTON_MEMORY_SECONDS)
    return reply


def post_to_response_url(response_url, reply, *, replace_original=None):
    """Post a Reply through a response_url; False (logged) if Slack refused it or could not be reached."""
    message = reply.as_slack()
    # Slack's 429 says when to come back (Retry-After); twice more, then the member is left without an answer.
    client = WebhookClient(response_url, timeout=settings.NOTIFY_HTTP_TIMEOUT, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)])
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


_answering = set()  # this process's threads answering because the broker could not take the answer
_answering_lock = threading.Lock()


def answer_here(task, error, args, kwargs):
    """The answers' fallback when the broker is down: answer from a thread of this (web) process, at
    once: a broker that is down costs a slower answer, never Slack's 3-second limit."""
    logger.warning("could not hand a slack answer to a worker (%s); answering from the web process", error)
    thread = threading.Thread(target=_answer, args=(task, args, kwargs), name="slack-answer", daemon=True)
    with _answering_lock:
        _answering.add(thread)
    thread.start()


def _answer(task, args, kwargs):
    try:
        task(*args, **kwargs)
    except Exception:
        logger.exception("slack: answering %s failed", task.name)
    finally:
        connections.close_all()  # this thread's own connections
        with _answering_lock:
            _answering.discard(threading.current_thread())


def wait_for_answers(timeout):
    """Wait up to `timeout` seconds for this process's answers handed over so far; True if all are done (tests)."""
    from labres.celery import wait_for_hand_overs

    handed = wait_for_hand_overs(timeout)
    with _answering_lock:
        threads = list(_answering)
    for thread in threads:
        thread.join(timeout)
    return handed and not any(thread.is_alive() for thread in threads)


@shared_task(name="notifications.slackbot.tasks.answer_command", ignore_result=True, broker_down=answer_here)
def answer_command(text, slack_user_id, response_url):
    """Run a slow slash command (status, realtime) and post its reply through response_url, in place
    of the "Working on it…" the endpoint acknowledged with."""
    return post_to_response_url(response_url, run_command(text, slack_user_id), replace_original=True)


@shared_task(name="notifications.slackbot.tasks.answer_action", ignore_result=True, broker_down=answer_here)
def answer_action(action_id, value, slack_user_id, response_url, press=None):
    """Act on a button (once per press: replays.py) and answer through response_url. An answer to a
    press that did its work replaces the message, so its spent buttons go; one that did nothing
    (refused, or pressed again) comes as a new message only the member sees, and the buttons stay."""
    reply = run_action(action_id, value, slack_user_id, press=tuple(press) if press else None)
    return post_to_response_url(response_url, reply, replace_original=not reply.refused)
