"""One class per channel, found by name in CHANNELS. Each sends one rendered outbox row.

send() returns on success and raises DeliveryError otherwise: permanent for what no retry
can fix (webhook gone, unknown channel, no address), else temporary, with the delay Slack
asked for when it answered 429.
"""
import logging
import smtplib
import socket
from email.utils import formataddr, parseaddr
from http.client import HTTPException
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.webhook import WebhookClient

logger = logging.getLogger(__name__)

# Slack Web API errors that no retry fixes.
SLACK_PERMANENT_ERRORS = {
    "channel_not_found", "not_in_channel", "is_archived", "user_not_found", "user_disabled",
    "invalid_auth", "account_inactive", "token_revoked", "not_authed", "no_permission",
    "missing_scope", "cannot_dm_bot", "invalid_blocks", "msg_too_long", "users_not_found",
}

# What an HTTP call to Slack raises when no answer came back: refused, reset, timed out (all
# OSErrors, URLError included), or bytes that are no HTTP answer (a broken proxy). All temporary.
UNREACHABLE = (OSError, HTTPException)


class DeliveryError(Exception):
    def __init__(self, message, *, permanent=False, retry_after=None):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after  # seconds, when the other side said how long to wait


class Channel:
    name = ""
    label = ""
    family = "slack"  # which templates render its messages: "slack" or "email"
    for_members = False  # a member may choose it; otherwise it belongs to destinations

    def reaches(self, user):
        """Whether this channel can reach `user` at all (a Slack id, an e-mail address)."""
        return False

    def send(self, notification):
        raise NotImplementedError


def _slack_retry_after(headers, default=None):
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            value = value[0] if isinstance(value, list) else value
            try:
                return max(1, int(float(value)))
            except ValueError:
                return default
    return default


def slack_client():
    """The bot's Web API client; None when no bot token is set."""
    if not settings.SLACK_BOT_TOKEN:
        return None
    # No built-in retries: a failed call goes back to the outbox, which retries with backoff.
    return WebClient(
        token=settings.SLACK_BOT_TOKEN, base_url=settings.SLACK_API_URL,
        timeout=settings.NOTIFY_HTTP_TIMEOUT, retry_handlers=[],
    )


def _post_with_bot(channel_id, payload):
    client = slack_client()
    if client is None:
        raise DeliveryError("No Slack bot token is set (SLACK_BOT_TOKEN).", permanent=True)
    try:
        client.chat_postMessage(channel=channel_id, text=payload["text"], blocks=payload.get("blocks"), unfurl_links=False)
    except SlackApiError as error:
        response = error.response
        code = response.get("error") if isinstance(response.data, dict) else None
        if response.status_code == 429 or code == "ratelimited":
            raise DeliveryError("Slack is rate limiting (429).", retry_after=_slack_retry_after(response.headers, 30)) from None
        permanent = code in SLACK_PERMANENT_ERRORS
        raise DeliveryError(f"Slack answered {response.status_code}: {code or 'error'}.", permanent=permanent) from None
    except SlackRequestError as error:  # slack-sdk refused to send: SLACK_API_URL is no http(s) address
        raise DeliveryError(f"Slack was not called: {error} (check SLACK_API_URL).", permanent=True) from None
    except (*UNREACHABLE, ValueError) as error:
        raise DeliveryError(f"Slack could not be reached: {error}.") from None


class SlackDirectMessage(Channel):
    name = "slack_dm"
    label = "Slack direct message"
    for_members = True

    def reaches(self, user):
        return bool(settings.SLACK_BOT_TOKEN) and bool(user.profile.slack_user_id)

    def send(self, notification):
        slack_id = notification.recipient.profile.slack_user_id
        if not slack_id:
            raise DeliveryError(f"{notification.recipient.get_username()} has no Slack id on their profile.", permanent=True)
        _post_with_bot(slack_id, notification.payload)


class SlackChannelPost(Channel):
    name = "slack_channel"
    label = "Slack channel (bot)"

    def send(self, notification):
        _post_with_bot(notification.destination.channel, notification.payload)


class SlackWebhook(Channel):
    name = "slack_webhook"
    label = "Slack incoming webhook"

    def send(self, notification):
        client = WebhookClient(notification.destination.webhook_url, timeout=settings.NOTIFY_HTTP_TIMEOUT, retry_handlers=[])
        payload = notification.payload
        try:
            response = client.send(text=payload["text"], blocks=payload.get("blocks"), unfurl_links=False)
        except SlackRequestError:  # slack-sdk sends to http(s) only; an ftp:// URL passes the admin's URL field
            raise DeliveryError(
                f"The webhook URL {notification.destination.webhook_url} is not a Slack webhook address "
                "(https://hooks.slack.com/services/…); correct it in the admin, then retry.", permanent=True,
            ) from None
        except (*UNREACHABLE, ValueError) as error:
            raise DeliveryError(f"The webhook could not be reached: {error}.") from None
        if response.status_code == 200:
            return
        if response.status_code == 429:
            raise DeliveryError("Slack is rate limiting (429).", retry_after=_slack_retry_after(response.headers, 30))
        # 404 no_service / 403 action_prohibited / 410 channel_is_archived: the webhook is gone.
        permanent = response.status_code in (400, 403, 404, 410)
        raise DeliveryError(f"The webhook answered {response.status_code}: {response.body[:200]}", permanent=permanent)


class Email(Channel):
    name = "email"
    label = "E-mail"
    family = "email"
    for_members = True

    def reaches(self, user):
        return bool(user.email)

    def send(self, notification):
        user = notification.recipient
        if not user.email:
            raise DeliveryError(f"{user.get_username()} has no e-mail address.", permanent=True)
        from reservations.models import member_name
        from reservations.text import plain

        payload = notification.payload
        message = EmailMultiAlternatives(
            # plain: a name stored before line breaks were refused must not break the header for good.
            subject=payload["subject"], body=payload["text"], to=[formataddr((plain(member_name(user)), user.email))],
            # Machine-sent: no vacation or out-of-office replies, please (RFC 3834; Exchange's own header).
            headers={"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All", "Message-ID": message_id(notification)},
        )
        if payload.get("html"):
            message.attach_alternative(payload["html"], "text/html")
        if payload.get("attach_ics") and notification.booking_id:
            from .messages import booking_ics

            message.attach(*booking_ics(notification.booking_id))
        try:
            message.send()
        except ValueError as error:  # Django refuses an address it cannot write into a header
            raise DeliveryError(f"The e-mail to {user.email!r} could not be written: {error}.", permanent=True) from None
        except OSError as error:  # smtplib's errors, refused connections and timeouts are all OSErrors
            raise smtp_delivery_error(error) from None


def message_id(notification):
    """The same Message-ID on every try of one outbox row, so that a repeat after a worker died
    mid-send (see the README's delivery guarantee) can be recognised by mail servers and clients."""
    host = urlsplit(settings.SITE_URL).hostname or "labres"
    return f"<notification-{notification.pk}.{notification.created_at:%Y%m%dT%H%M%S%f}@{host}>"


def smtp_delivery_error(error):
    """What a failed SMTP send means: a 5xx answer is permanent; a 4xx answer or a connection problem is not."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        # No smtp_code here: one (code, answer) per refused address, keyed as written in To.
        answers = [(parseaddr(address)[1] or address, code, _smtp_text(text)) for address, (code, text) in error.recipients.items()]
        said = "; ".join(f"{address} ({code} {text})" for address, code, text in answers)
        if answers and all(code >= 500 for _, code, _ in answers):
            return DeliveryError(f"The mail server refused {said}; check the member's e-mail address, then retry.", permanent=True)
        return DeliveryError(f"The mail server refused {said} for now.")
    if isinstance(error, smtplib.SMTPSenderRefused):
        said = f"{error.smtp_code} {_smtp_text(error.smtp_error)}"
        return DeliveryError(f"The mail server refused the sender {error.sender} ({said}); check DEFAULT_FROM_EMAIL.", permanent=error.smtp_code >= 500)
    if isinstance(error, smtplib.SMTPResponseException):
        return DeliveryError(f"The mail server answered {error.smtp_code} {_smtp_text(error.smtp_error)}.", permanent=error.smtp_code >= 500)
    if isinstance(error, (ConnectionError, TimeoutError, socket.gaierror, smtplib.SMTPServerDisconnected)):
        return DeliveryError(f"The mail server {settings.EMAIL_HOST}:{settings.EMAIL_PORT} could not be reached: {error}.")
    return DeliveryError(f"The e-mail could not be sent: {error}.")


def _smtp_text(text):
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


CHANNELS = {channel.name: channel for channel in [SlackDirectMessage(), SlackChannelPost(), SlackWebhook(), Email()]}
MEMBER_CHANNELS = [name for name, channel in CHANNELS.items() if channel.for_members]
