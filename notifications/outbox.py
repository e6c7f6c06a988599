"""The outbox: queue messages with the change that causes them, exactly once, and send them at least once.

Two steps. A change writes what happened, record(): one OutboxEvent row in the change's
transaction, nothing rendered, nothing else read, so the change stays cheap. After commit, a
task is asked to expand it, expand(): in one transaction, claim the event, render its messages,
write one Notification row per recipient and channel, and mark it expanded; then send those
rows. Reminders, found outside any change, write their rows directly with notify().

If the broker is down, nothing is lost: sweep() (beat, every 30 s) expands the events and sends
the rows that are due. An event is expanded, and a row sent, by whoever claims it first (a
conditional UPDATE), so two workers, or a task and the sweep, never queue or send a message
twice; a row's key is unique besides. The one repeat left: a worker that dies after the channel
took a row and before it marked it sent; the sweep sends that row again once its lease is over.
Failures back off exponentially, Slack's Retry-After is honoured, and after NOTIFY_MAX_ATTEMPTS a
row is left failed for staff.
"""
import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Prefetch, Q
from django.utils import timezone

from labres.celery import app, enqueue_after_commit
from labres.db import insert
from reservations.signals import is_quiet

from .channels import CHANNELS, MEMBER_CHANNELS, DeliveryError
from .events import EVENTS
from .messages import Occasion, overrides_for, render
from .models import Destination, Notification, OutboxEvent, Preference

logger = logging.getLogger(__name__)

# How long a claimed row belongs to its sender at least; a worker that died mid-send frees it after
# its lease (see send_lease()).
MIN_SEND_LEASE = timedelta(minutes=2)
# How long a claimed event belongs to its expander (the claim commits only with the expansion).
EXPAND_LEASE = timedelta(minutes=2)
# "Someone booked right after you": a booking starting at most this long after yours ends.
FOLLOW_GAP = timedelta(minutes=15)
MAX_RETRY_DELAY = timedelta(hours=1)


# --- what happened: events, written with the change, expanded after it ---------------------------


def record(event, *, key, booking_id=None, alert_id=None, by_id=None, context=None):
    """Write what happened, in the caller's transaction: one INSERT (a key written already is skipped).

    After commit a worker is asked to expand it; the sweep does if none can be reached.
    """
    if is_quiet():  # demo data, a calendar's import: news to nobody
        return None
    row = OutboxEvent(
        key=key, event=event, booking_id=booking_id, alert_id=alert_id, by_id=by_id, context=context or {},
        next_attempt_at=timezone.now(),
    )
    insert([row], ignore_conflicts=True)  # one prepared statement: every booking writes one
    deliver_after_commit([key])
    return key


def expand(event_id, *, now=None):
    """Claim one event and queue its messages, in one transaction; returns the keys of the rows written.

    [] when it is not due, taken by another expander, or failed (it is retried later). A crash
    rolls the claim back with the rows, and rows' keys are unique: a re-run queues nothing twice.
    """
    now = now or timezone.now()
    lease_end = max(now, timezone.now()) + EXPAND_LEASE
    due = Q(pk=event_id, state__in=[OutboxEvent.State.PENDING, OutboxEvent.State.EXPANDING], next_attempt_at__lte=now)
    try:
        with transaction.atomic():
            # On PostgreSQL a second expander waits here for the first to commit, then finds it expanded.
            claimed = OutboxEvent.objects.filter(due).update(
                state=OutboxEvent.State.EXPANDING, attempts=F("attempts") + 1, next_attempt_at=lease_end,
            )
            if not claimed:
                return []
            event = OutboxEvent.objects.select_related("by", "alert__server", "alert__user__profile").get(pk=event_id)
            rows = []
            for occasion, key in occasions_of(event):
                rows += queue(occasion, key=key, now=now)
            OutboxEvent.objects.filter(pk=event_id).update(state=OutboxEvent.State.EXPANDED, expanded_at=timezone.now(), last_error="")
    except Exception as error:  # a bug in one message must not stop the others; keep it for staff
        logger.exception("outbox event %s: could not expand it", event_id)
        _expansion_failed(event_id, error, now)
        return []
    return [row.key for row in rows]


def _expansion_failed(event_id, error, now):
    """Retry later, with backoff; after NOTIFY_MAX_ATTEMPTS, leave it failed for staff rather than retry for ever."""
    attempts = (OutboxEvent.objects.filter(pk=event_id).values_list("attempts", flat=True).first() or 0) + 1
    state = OutboxEvent.State.FAILED if attempts >= settings.NOTIFY_MAX_ATTEMPTS else OutboxEvent.State.PENDING
    OutboxEvent.objects.filter(pk=event_id, state__in=[OutboxEvent.State.PENDING, OutboxEvent.State.EXPANDING]).update(
        state=state, attempts=attempts, next_attempt_at=now + retry_delay(attempts),
        last_error=f"{type(error).__name__}: {error}"[:2000],
    )


def expand_due(now=None, limit=500, deadline=None):
    """Expand the events that are due (never handed to a worker, failed earlier); returns the keys of the rows written.

    With `deadline` (a time.monotonic() value), it stops there; the rest waits for the next run.
    """
    now = now or timezone.now()
    due = list(
        OutboxEvent.objects.filter(state__in=[OutboxEvent.State.PENDING, OutboxEvent.State.EXPANDING], next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    keys = []
    for event_id in due:
        if deadline is not None and time.monotonic() > deadline:
            break
        keys += expand(event_id, now=now)
    return keys


def retry_events(queryset, now=None):
    """Staff's retry: events not expanded yet become due now with a fresh count of attempts."""
    now = now or timezone.now()
    return queryset.exclude(state=OutboxEvent.State.EXPANDED).update(
        state=OutboxEvent.State.PENDING, attempts=0, next_attempt_at=now, last_error="",
    )


def _loaded_bookings(ids):
    """Bookings with what every message shows (owner, units), in two queries."""
    from reservations.models import Allocation, Booking

    allocations = Prefetch("allocations", queryset=Allocation.objects.select_related("unit__device"))
    return list(Booking.objects.select_related("user__profile", "server", "room").prefetch_related(allocations).filter(pk__in=ids))


def occasions_of(event):
    """What an event tells, as (occasion, key) pairs: itself, and for a new booking, whom it follows.

    Empty when its booking is gone (deleted meanwhile): nothing to send.
    """
    booking = None
    if event.booking_id is not None:
        found = _loaded_bookings([event.booking_id])
        if not found:
            return []
        booking = found[0]
    if event.alert_id is not None:
        return [(Occasion(event.event, alert=event.alert, booking=booking), event.key)]
    if "waitlist_entry" in event.context:
        return _waitlist_occasions(event)
    if booking is None:
        return []
    if "series" in event.context:  # about a series' dates: created, cancelled, asked for approval, decided
        from reservations.services import pending_dates

        if event.event == "approval_requested" and not pending_dates(event.context["series"]).exists():
            return []  # every date decided (or expired) before the request went out
        return [(Occasion(event.event, booking=booking, by=event.by, extra=_series_extra(event.context)), event.key)]
    if event.event == "approval_requested" and booking.status != "pending":
        return []  # decided (or expired) before the request went out: nothing left to ask
    before = None
    if event.event == "changed" and event.context.get("before"):
        # The times of this change, not the booking's latest: a later change has its own event.
        before = tuple(datetime.fromisoformat(value) for value in event.context["before"])
        if event.context.get("after"):
            booking.start, booking.end = (datetime.fromisoformat(value) for value in event.context["after"])
    pairs = [(Occasion(event.event, booking=booking, by=event.by, before=before), event.key)]
    if event.event == "created":
        pairs += [
            (Occasion("followed", booking=previous, next_booking=booking), f"followed:b{previous.pk}:by{booking.pk}")
            for previous in _followed_by(booking)
        ]
    return pairs


def _waitlist_occasions(event):
    """A waitlist offer or lapse: about the entry (its member), not a booking. Nothing if the entry is gone."""
    from reservations.models import WaitlistEntry

    entry = WaitlistEntry.objects.select_related("user__profile", "server", "room").filter(pk=event.context["waitlist_entry"]).first()
    if entry is None:
        return []
    return [(Occasion(event.event, extra={"entry": entry, "why": event.context.get("why", "")}), event.key)]


def _series_extra(context):
    """A series event's dates as datetimes (shown in each recipient's zone), its rule, and what was skipped or kept."""
    def times(rows):
        return [tuple(datetime.fromisoformat(value) for value in row[:2]) + tuple(row[2:]) for row in rows]

    return {
        "series_id": context.get("series"), "rule": context.get("rule", ""),
        "dates": times(context.get("dates", [])), "skipped": times(context.get("skipped", [])), "running": times(context.get("running", [])),
    }


def _followed_by(booking):
    """Others' bookings on the same units that end right before this one starts."""
    from reservations.models import Allocation

    unit_ids = [allocation.unit_id for allocation in booking.allocations.all()]
    before_ids = (
        Allocation.objects.active().filter(unit_id__in=unit_ids, end__lte=booking.start, end__gte=booking.start - FOLLOW_GAP)
        .exclude(booking__user_id=booking.user_id)
        .values_list("booking_id", flat=True)
        .distinct()
    )
    return sorted(_loaded_bookings(list(before_ids)), key=lambda previous: previous.pk)


# --- the messages: rows, rendered, one per recipient and channel ------------------------------------


def notify(occasion, *, key=None):
    """Queue the messages for one occasion (inside the caller's transaction) and hand them to a worker
    after commit; returns the rows queued. For what is found outside a change (reminders).

    `key` names the occasion in the rows' unique keys (default: the event and the booking or
    alert); a key already queued is skipped, which is what makes re-runs harmless.
    """
    if is_quiet():
        return []
    rows = queue(occasion, key=key)
    if rows:
        deliver_after_commit([row.key for row in rows])
    return rows


def queue(occasion, *, key=None, now=None):
    """Render and write the rows for one occasion, due at `now`; returns them (a key already queued is skipped)."""
    key = key or _occasion_key(occasion)
    overrides = overrides_for(occasion.event)
    now = now or timezone.now()
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
    if rows:
        Notification.objects.bulk_create(rows, ignore_conflicts=True)
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
    if "entry" in occasion.extra:  # a waitlist event goes to the entry's member
        concerned = occasion.extra["entry"].user
    if concerned is not None and concerned.is_active and spec.to_owner:
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
        pairs += [(user, name) for name in _reaching(user, channels)]
    return pairs


def _reaching(user, channels):
    return [name for name in channels if name in MEMBER_CHANNELS and CHANNELS[name].reaches(user)]


def channels_for(user, event):
    """The member channels that will carry `event` to `user` (their choice on their profile, else the default)
    and can reach them; [] when nothing will."""
    chosen = Preference.objects.filter(user=user, event=event).values_list("channels", flat=True).first()
    return _reaching(user, default_channels(user, event) if chosen is None else chosen)


def how_told(user, event):
    """(channel names, words): how `user` will hear of `event` ("by e-mail to a@lab.org"), or, with no channel,
    why they will not ("you turned off … on your profile"), said to them."""
    channels = channels_for(user, event)
    if channels:
        return channels, "by " + " and ".join(f"e-mail to {user.email}" if name == "email" else CHANNELS[name].label for name in channels)
    chosen = Preference.objects.filter(user=user, event=event).values_list("channels", flat=True).first()
    if chosen == []:
        return [], f"you turned off “{EVENTS[event].label}” messages on your profile"
    if not any(CHANNELS[name].reaches(user) for name in MEMBER_CHANNELS):
        return [], "labres has no e-mail address and no Slack link for you (add either on your profile)"
    if chosen is None:
        return [], f"“{EVENTS[event].label}” messages are off unless you turn them on on your profile"
    labels = " or ".join(CHANNELS[name].label for name in chosen if name in CHANNELS)
    return [], f"the channels you chose for “{EVENTS[event].label}” messages ({labels}) cannot reach you"


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
    if "entry" in occasion.extra:
        return []  # a waitlist offer is the member's own business
    server_id = booking.server_id if booking is not None else getattr(alert, "server_id", None)
    room_id = booking.room_id if booking is not None else None
    where = Q(server__isnull=True, room__isnull=True)
    if server_id:
        where |= Q(server_id=server_id)
    if room_id:
        where |= Q(room_id=room_id)
    candidates = Destination.objects.filter(where, active=True)
    return [destination for destination in candidates if destination.hears(occasion.event)]


def deliver_after_commit(keys):
    """After commit, a worker expands these events and sends these rows (labres.celery.enqueue_after_commit:
    the keys of changes made close together travel in one task); if the broker is down, the sweep does."""
    # By name: the task wraps this module (notifications.tasks imports it), not the other way.
    enqueue_after_commit(app.tasks["notifications.tasks.deliver"], list(keys))


def broker_down(task, error, args, kwargs):
    """The deliver task's fallback: nothing to do here; the rows are in the database and the sweep sends them."""
    logger.warning("could not hand %d notification(s) to a worker (%s); the outbox sweep will send them", len(args[0]), error)


def deliver(keys=None, *, ids=None, now=None):
    """Expand the events among `keys`, then send the given rows and theirs that are due; returns how many were sent."""
    keys = list(keys or [])
    events = OutboxEvent.objects.filter(key__in=keys, state__in=[OutboxEvent.State.PENDING, OutboxEvent.State.EXPANDING])
    for event_id in list(events.values_list("pk", flat=True)):
        keys += expand(event_id, now=now)
    rows = Notification.objects.filter(Q(key__in=keys) | Q(pk__in=ids or []))
    sent = 0
    for row_id in rows.values_list("pk", flat=True):
        sent += send_one(row_id, now=now)
    return sent


def sweep(now=None, limit=500, budget=None):
    """Expand the events that are due, then send the rows that are due: never handed to a worker,
    waiting for a retry, or claimed by a worker that died; returns how many rows were sent.

    With `budget` (seconds), it stops starting new work after that long: beat's sweep must not hold
    a worker (and beat's other tasks queued behind it) for minutes while a backlog drains.
    """
    now = now or timezone.now()
    began = time.monotonic()
    deadline = began + budget if budget is not None else None
    expand_due(now=now, limit=limit, deadline=began + budget / 2 if budget is not None else None)  # half left for sending
    due = list(
        Notification.objects.filter(state__in=[Notification.State.PENDING, Notification.State.SENDING], next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    sent = 0
    for row_id in due:
        if deadline is not None and time.monotonic() > deadline:
            break
        sent += send_one(row_id, now=now)
    return sent


def send_lease():
    """How long a claimed row belongs to its sender: well over the longest a channel may take (its
    timeout, thrice), so that a slow sender that is still alive is never overtaken by the sweep."""
    longest = max(settings.NOTIFY_HTTP_TIMEOUT, settings.EMAIL_TIMEOUT or 0)
    return max(MIN_SEND_LEASE, timedelta(seconds=3 * longest))


def send_one(row_id, *, now=None):
    """Claim one row and send it; 1 if this call sent it, else 0 (not due, taken, or failed)."""
    now = now or timezone.now()
    # The lease runs from the claim, not from `now`: a sweep's `now` is when it started, and a
    # sweep that took longer than the lease would otherwise claim rows whose lease had already
    # ended, for the next sweep to claim and send again.
    lease_end = max(now, timezone.now()) + send_lease()
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
    text = f"A test message from labres, sent{who} from the admin. This destination ({slack_escape(destination.scope)}) works."
    row = Notification.objects.create(
        key=f"test:d{destination.pk}:{now:%Y%m%dT%H%M%S.%f}", event="test", channel=destination.kind,
        destination=destination, next_attempt_at=now,
        payload={"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]},
    )
    deliver_after_commit([row.key])
    return row
