"""Slack requests act once.

A signed request seen again while its timestamp is still accepted is a replay and is refused; a
button pressed again on the same message (a double click, a payload delivered twice, a replay
signed anew) answers without acting again. What was seen lives in the shared cache (Redis, or the
embedded file cache), written with cache.add, which is atomic: of two identical requests racing,
exactly one goes on.

If the cache cannot be asked (Redis down), the request goes on and a warning is logged: the bot
keeps working, and until the cache is back a replay is refused only by Slack's 5-minute window
(the API's throttles make the same choice for members).
"""
import hashlib
import logging

from django.core.cache import cache

logger = logging.getLogger(__name__)

# A request is accepted from 5 minutes before its timestamp to 5 minutes after: remember it 10.
REQUEST_MEMORY_SECONDS = 10 * 60
# A button acts once per message and member for this long (a message's buttons stay pressable).
BUTTON_MEMORY_SECONDS = 24 * 3600
# While a press is being acted on (in a worker, after Slack was answered): long enough for any
# action, short enough that a press a dead worker never finished can be made again.
ACTING_SECONDS = 5 * 60


def _key(kind, parts):
    digest = hashlib.sha256("\0".join(str(part) for part in parts).encode()).hexdigest()
    return f"slack:{kind}:{digest}"


def first_time(kind, *parts, seconds):
    """True the first time these parts are seen within `seconds`; True too if the cache is down."""
    try:
        return cache.add(_key(kind, parts), 1, timeout=seconds)
    except Exception as error:  # noqa: BLE001 - any cache backend's failure: fail open, logged
        logger.warning("slack %s: the cache cannot be asked whether it was seen (%s); letting it through", kind, error)
        return True


def keep(kind, *parts, seconds):
    """Remember these parts for `seconds` from now (a press that did its work)."""
    try:
        cache.set(_key(kind, parts), 1, timeout=seconds)
    except Exception as error:  # noqa: BLE001
        logger.warning("slack %s: could not remember a press (%s)", kind, error)


def forget(kind, *parts):
    """Let these parts be seen as new again (the action they started did nothing)."""
    try:
        cache.delete(_key(kind, parts))
    except Exception as error:  # noqa: BLE001
        logger.warning("slack %s: could not forget a press (%s)", kind, error)


def button_press(payload, user_id, action):
    """What makes a press the same press: the message, the member, the button and its value.
    None when the payload names no message (then only the request's own signature guards it)."""
    container = payload.get("container") or {}
    message = payload.get("message") or {}
    message_ts = container.get("message_ts") or message.get("ts")
    if not message_ts:
        return None
    channel = container.get("channel_id") or (payload.get("channel") or {}).get("id") or ""
    return (channel, message_ts, user_id, action.get("action_id", ""), action.get("value", ""))
