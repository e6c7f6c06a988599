"""The outbox: queue messages with the change that causes them, and send each exactly once.

notify() writes rendered rows inside the caller's transaction; after commit, a task is asked
to send them. If the broker is down, nothing is lost: sweep() (beat, every 30 s) sends what
is due. A row is sent by whoever claims it first (a conditional UPDATE), so two workers, or a
task and the sweep, never send the same row twice. Failures back off exponentially, Slack's
Retry-After is honoured, and after NOTIFY_MAX_ATTEMPTS a row is left failed for staff.
"""
import logging
import threading
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .channels import CHANNELS, MEMBER_CHANNELS, DeliveryError
from .events import EVENTS
from .messages import overrides_for, render
from .models import Destination, Notification, Preference

logger = logging.getLogger(__name__)

# How long a claimed row belongs to its sender; a worker that died mid-send frees it after this.
SEND_LEASE = timedelta(minutes=2)
MAX_RETRY_DELAY = timedelta(hours=1)


_quiet = threading.local()


@contextmanager
def muted():
    """Queue nothing inside this block (this thread): for loading demo data or importing old bookings."""
    _quiet.muted = True
    try:
        yield
    finally:
        _quiet.muted = False


def notify(occasion, *, key=None):
    """Queue the messages for one occasion (inside the caller's transaction); returns the rows queued.

    `key` names the occasion in the rows' unique keys (default: the event and the booking or
    alert); a key already queued is skipped, which is what makes re-runs harmless.
    """
    if getattr(_quiet, "muted", False):
        return []
    key = key or _occasion_key(occasion)
    overrides = overrides_for(occasion.event)
    now = timezone.now()
    rows = []
    for user, channel in _member_audience(occasion):
        family = CHANNELS[channel].family
        rows.append(Notification(
            key=f"{key}:u{user.pk}:{channel}", event=occasion.event, channel=channel, recipient=user,
            booking=occasion.booking, alert=occasion.alert, next_attempt_at=now,
            payload=render(occasion, family, user=user, overrides=overrides),
        ))
    for destination in _destinations(occasion):
        rows.append(Notification(
            key=f"{key}:d{destination.pk}:{destination.kind}", event=occasion.event, channel=destination.kind,
            destination=destination, booking=occasion.booking, alert=occasion.alert, next_attempt_at=now,
            payload=render(occasion, "slack", destination=destination, overrides=overrides),
        ))
    if not rows:
        return []
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    keys = [row.key for row in rows]
    transaction.on_commit(lambda: hand_to_worker(keys))
    return rows


def _occasion_key(occasion):
    if occasion.booking is not None:
        return f"{occasion.event}:b{occasion.booking.pk}"
    return f"{occasion.event}:a{occasion.alert.pk}"


def _member_audience(occasion):
    """(user, channel) pairs: the member concerned, and staff for staff events, by their preferences."""
    spec = EVENTS[occasion.event]
    users = {}
    concerned = occasion.booking.user if occasion.booking is not None else getattr(occasion.alert, "user", None)
    if concerned is not None and concerned.is_active:
        users[concerned.pk] = concerned
    if spec.to_staff:
        for user in get_user_model().objects.filter(is_staff=True, is_active=True).select_related("profile"):
            users.setdefault(user.pk, user)
    if not users:
        return []
    chosen = dict(Preference.objects.filter(user_id__in=users, event=occasion.event).values_list("user_id", "channels"))
    pairs = []
    for user_id, user in users.items():
        channels = chosen[user_id] if user_id in chosen else default_channels(user, occasion.event)
        pairs += [(user, name) for name in channels if name in MEMBER_CHANNELS and CHANNELS[name].reaches(user)]
    return pairs


def default_channels(user, event):
    """Unless a member chose: a Slack direct message if Slack knows them, else e-mail, for events on by default."""
    if not EVENTS[event].on_by_default:
        return []
    for name in ("slack_dm", "email"):
        if CHANNELS[name].reaches(user):
            return [name]
    return []


def _destinations(occasion):
    """The Slack destinations that hear this event: the resource's own, and the lab-wide ones."""
    booking, alert = occasion.booking, occasion.alert
    server_id = booking.server_id if booking is not None else getattr(alert, "server_id", None)
    room_id = booking.room_id if booking is not None else None
    where = Q(server__isnull=True, room__isnull=True)
    if server_id:
        where |= Q(server_id=server_id)
    if room_id:
        where |= Q(room_id=room_id)
    candidates = Destination.objects.filter(where, active=True)
    return [destination for destination in candidates if destination.hears(occasion.event)]


# A broker that is down must not hold up the change that queued the messages (this runs after
# commit, inside the web request): one connection attempt, short socket timeouts, no retries.
HAND_OVER_TIMEOUT = 2  # seconds
HAND_OVER_TRANSPORT_OPTIONS = {"max_retries": 0, "socket_connect_timeout": HAND_OVER_TIMEOUT, "socket_timeout": HAND_OVER_TIMEOUT}


def send_task_once(task, args):
    """Send a task with one connection attempt and short timeouts; raises if the broker is unreachable.

    Through Celery's own pool, a Redis that is down costs each caller about 6 s of connection
    retries, a host that drops packets the OS's connect timeout (minutes), and a Redis that
    accepts but does not answer, for ever. These pooled connections try once, with timeouts;
    kombu keeps one pool per broker URL and options.
    """
    from kombu.pools import connections

    if task.app.conf.task_always_eager:
        task.apply_async(args=args)
        return
    broker = task.app.connection_for_write(transport_options=HAND_OVER_TRANSPORT_OPTIONS)
    with connections[broker].acquire(block=True, timeout=HAND_OVER_TIMEOUT) as connection:
        connection.ensure_connection(max_retries=0)
        task.apply_async(args=args, connection=connection, retry=False)


def hand_to_worker(keys):
    """Ask a worker to send these rows now; if the broker is down, the sweep sends them later."""
    from .tasks import deliver

    try:
        send_task_once(deliver, [keys])
    except Exception as error:  # the broker is unreachable: delay, lose nothing
        logger.warning("could not hand %d notification(s) to a worker (%s); the outbox sweep will send them", len(keys), error)


def deliver(keys=None, *, ids=None, now=None):
    """Send the given rows that are due; returns how many were sent."""
    rows = Notification.objects.filter(Q(key__in=keys or []) | Q(pk__in=ids or []))
    sent = 0
    for row_id in rows.values_list("pk", flat=True):
        sent += send_one(row_id, now=now)
    return sent


def sweep(now=None, limit=500):
    """Send what is due: never handed to a worker, waiting for a retry, or claimed by a worker that died."""
    now = now or timezone.now()
    due = list(
        Notification.objects.filter(state__in=[Notification.State.PENDING, Notification.State.SENDING], next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(send_one(row_id, now=now) for row_id in due)


def send_one(row_id, *, now=None):
    """Claim one row and send it; 1 if this call sent it, else 0 (not due, taken, or failed)."""
    now = now or timezone.now()
    # The lease runs from the claim, not from `now`: a sweep's `now` is when it started, and a
    # sweep that took longer than the lease would otherwise claim rows whose lease had already
    # ended, for the next sweep to claim and send again.
    lease_end = max(now, timezone.now()) + SEND_LEASE
    claimed = Notification.objects.filter(
        pk=row_id, state__in=[Notification.State.PENDING, Notification.State.SENDING], next_attempt_at__lte=now,
    ).update(state=Notification.State.SENDING, attempts=F("attempts") + 1, next_attempt_at=lease_end)
    if not claimed:
        return 0
    row = Notification.objects.select_related("recipient__profile", "destination").get(pk=row_id)
    try:
        CHANNELS[row.channel].send(row)
    except DeliveryError as error:
        _failed(row, error, now)
        return 0
    except Exception as error:  # a bug in a channel must not stop the others; keep it for staff
        logger.exception("notification %s: unexpected error", row.pk)
        _failed(row, DeliveryError(f"{type(error).__name__}: {error}"), now)
        return 0
    Notification.objects.filter(pk=row.pk).update(state=Notification.State.SENT, sent_at=timezone.now(), last_error="")
    return 1


def _failed(row, error, now):
    out_of_tries = row.attempts >= settings.NOTIFY_MAX_ATTEMPTS
    if error.permanent or out_of_tries:
        state, next_at = Notification.State.FAILED, now
        logger.warning("notification %s failed for good: %s", row.pk, error.message)
    else:
        delay = retry_delay(row.attempts, error.retry_after)
        state, next_at = Notification.State.PENDING, now + delay
        logger.info("notification %s: %s; retrying in %ss", row.pk, error.message, int(delay.total_seconds()))
    Notification.objects.filter(pk=row.pk).update(state=state, next_attempt_at=next_at, last_error=error.message[:2000])


def retry_delay(attempts, retry_after=None):
    """What the other side asked for (Retry-After), else exponential backoff from NOTIFY_RETRY_SECONDS."""
    if retry_after:
        return min(timedelta(seconds=retry_after), MAX_RETRY_DELAY)
    return min(timedelta(seconds=settings.NOTIFY_RETRY_SECONDS * 2 ** max(attempts - 1, 0)), MAX_RETRY_DELAY)


def retry(queryset, now=None):
    """Staff's retry: failed (or waiting) rows become due now with a fresh count of attempts."""
    now = now or timezone.now()
    return queryset.exclude(state=Notification.State.SENT).update(
        state=Notification.State.PENDING, attempts=0, next_attempt_at=now, last_error="",
    )


def queue_test_message(destination, by=None):
    """Queue a short test message to one destination (staff checking it works); returns the row.

    Its event is "test", which is no member event: nobody chooses it, and no template renders it.
    """
    from reservations.models import member_name

    from .messages import slack_escape

    now = timezone.now()
    who = f" by {slack_escape(member_name(by))}" if by is not None else ""
    text = f"A test message from labres, sent{who} from the admin. This destination ({destination.scope}) works."
    row = Notification.objects.create(
        key=f"test:d{destination.pk}:{now:%Y%m%dT%H%M%S.%f}", event="test", channel=destination.kind,
        destination=destination, next_attempt_at=now,
        payload={"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]},
    )
    transaction.on_commit(lambda: hand_to_worker([row.key]))
    return row
