"""Socket Mode: for a portal Slack cannot reach, the bot opens a websocket to Slack and receives
the same slash commands and button clicks over it, answered by the same handlers.

Each envelope is acknowledged at once (Slack redelivers an envelope not acknowledged within
3 seconds). A quick command's reply travels with the acknowledgement; a slow one
(commands.DEFERRED) and button replies are posted afterwards through the envelope's response_url.
"""
import logging

from django.conf import settings
from django.db import close_old_connections
from slack_sdk import WebClient
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.response import SocketModeResponse

from . import replays, tasks

logger = logging.getLogger(__name__)


def socket_client():
    """A Socket Mode client with the app-level token, and the bot's Web API client."""
    if not settings.SLACK_APP_TOKEN:
        raise RuntimeError("Socket Mode needs SLACK_APP_TOKEN (an app-level token, xapp-..., with connections:write).")
    web_client = WebClient(token=settings.SLACK_BOT_TOKEN or None, base_url=settings.SLACK_API_URL)
    client = SocketModeClient(app_token=settings.SLACK_APP_TOKEN, web_client=web_client)
    client.socket_mode_request_listeners.append(process)
    return client


def process(client, request):
    """Acknowledge one envelope and answer it; nothing a handler does escapes this function."""
    close_old_connections()  # listeners run in a thread pool: no stale database connection
    try:
        if not replays.first_time("envelope", request.envelope_id, seconds=replays.REQUEST_MEMORY_SECONDS):
            # Slack sends an envelope again when it missed the acknowledgement: acknowledge, do not act twice.
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
        elif request.type == "slash_commands":
            _command(client, request)
        elif request.type == "interactive":
            _interaction(client, request)
        else:  # events and anything newer: acknowledged, not handled
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
    except Exception:
        logger.exception("socket mode: envelope %s (%s) failed", request.envelope_id, request.type)
    finally:
        close_old_connections()


def _command(client, request):
    from . import commands

    payload = request.payload or {}
    text = (payload.get("text") or "").strip()
    user_id = payload.get("user_id", "")
    response_url = payload.get("response_url", "")
    subcommand = text.split(maxsplit=1)[0].lower() if text else "status"
    if subcommand in commands.DEFERRED and response_url:
        working = commands.Reply(text="Working on it…").as_slack()
        client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=working))
        tasks.answer_command(text, user_id, response_url)
        return
    reply = tasks.run_command(text, user_id)
    client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=reply.as_slack()))


def _interaction(client, request):
    client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
    payload = request.payload or {}
    if payload.get("type") != "block_actions" or not payload.get("actions"):
        return
    action = payload["actions"][0]
    user_id = (payload.get("user") or {}).get("id", "")
    press = replays.button_press(payload, user_id, action)
    response_url = payload.get("response_url")
    if response_url:  # acknowledged already: act and answer here, in the listener's thread
        tasks.answer_action(action.get("action_id", ""), action.get("value", ""), user_id, response_url, press)
    else:
        tasks.run_action(action.get("action_id", ""), action.get("value", ""), user_id, press=press)
