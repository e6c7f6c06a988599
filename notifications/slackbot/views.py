"""Slack's HTTP endpoints: slash commands and button clicks.

Each request is checked against Slack's signature (HMAC of the raw body with the signing secret)
and refused if older than 5 minutes, or if the same signed request was already received (a
replay: replays.py); a button acts once per message. Slack wants an answer within 3 seconds: quick
commands are answered in the response; slow ones (commands.DEFERRED) and buttons are acknowledged at
once and answered through the response_url, from a worker or, with the broker down, a thread
(enqueue_after_commit, tasks.answer_here): the request never waits on the broker, the work, or Slack.
"""
import functools
import time

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from slack_sdk.signature import SignatureVerifier

from labres.celery import enqueue_after_commit
from reservations.parsing import parse_json

from . import replays, tasks

MAX_AGE_SECONDS = 5 * 60  # Slack's advice: older requests may be replays


def _error(status, code, message):
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def refusal(request):
    """An error response if the request is not Slack's (or the portal cannot tell), else None."""
    if not settings.SLACK_SIGNING_SECRET:
        return _error(503, "not_configured", "The Slack app is not set up here: SLACK_SIGNING_SECRET is empty.")
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if not timestamp or not signature:
        return _error(401, "unsigned", "Missing X-Slack-Request-Timestamp or X-Slack-Signature.")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):  # else int() or float() may fail
        return _error(401, "bad_timestamp", "X-Slack-Request-Timestamp is not a Unix time.")
    age = abs(time.time() - int(timestamp))
    if age > MAX_AGE_SECONDS:
        return _error(401, "stale", "The request is more than 5 minutes old (or from the future); refused as a replay.")
    verifier = SignatureVerifier(settings.SLACK_SIGNING_SECRET)
    if not verifier.is_valid(body=request.body, timestamp=timestamp, signature=signature):
        return _error(401, "bad_signature", "The Slack signature does not match this request.")
    if not replays.first_time("request", timestamp, signature, seconds=replays.REQUEST_MEMORY_SECONDS):
        return _error(409, "replayed", "This signed request was already received; Slack sends each request once, so a repeat is refused as a replay.")
    return None


def signed_by_slack(view):
    """A Slack endpoint: POST only, no CSRF token (Slack signs instead), answered only past refusal()."""

    @csrf_exempt
    @require_POST
    @functools.wraps(view)
    def checked(request):
        refused = refusal(request)
        if refused is not None:
            return refused
        return view(request)

    return checked


def _slack_json(reply):
    return JsonResponse(reply.as_slack())


@signed_by_slack
def slash_command(request):
    """A slash command: answered here, or acknowledged and answered from a worker."""
    from . import commands

    text = request.POST.get("text", "").strip()
    user_id = request.POST.get("user_id", "")
    response_url = request.POST.get("response_url", "")
    subcommand = text.split(maxsplit=1)[0].lower() if text else ""
    if (subcommand or "status") in commands.DEFERRED and response_url:
        enqueue_after_commit(tasks.answer_command, text, user_id, response_url)
        return _slack_json(commands.Reply(text="Working on it…"))
    return _slack_json(tasks.run_command(text, user_id))


@signed_by_slack
def interaction(request):
    """A button click (block_actions): answered through the response_url, or here."""
    from . import commands

    try:
        payload = parse_json(request.POST.get("payload", ""))  # a ParseError is a ValueError
        user_id = payload["user"]["id"]
        action = payload["actions"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return _error(400, "bad_payload", "The form field `payload` must be Slack's interaction JSON with user.id and actions.")
    if payload.get("type") != "block_actions":
        return _slack_json(commands.Reply(text=f"labres does not handle {payload.get('type')!r} interactions."))
    if action.get("action_id") in commands.LINK_ACTIONS:
        return JsonResponse({})  # the page opened in the browser; nothing to answer in Slack
    press = replays.button_press(payload, user_id, action)
    action_id, value = action.get("action_id", ""), action.get("value", "")
    response_url = payload.get("response_url")
    if not response_url:  # no message to answer to later (Slack sends one with every message button)
        return _slack_json(tasks.run_action(action_id, value, user_id, press=press))
    enqueue_after_commit(tasks.answer_action, action_id, value, user_id, response_url, press)
    return HttpResponse(status=200)  # Slack's acknowledgement; the answer follows through response_url
