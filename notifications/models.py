"""The outbox (one row per message to send) and what decides who gets which message."""
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from reservations.parsing import PLACE, describe_target

from .events import EVENTS, Event


class Destination(models.Model):
    """A Slack place that hears about a server's or room's bookings, or, with neither, about the lab.

    Staff add them in the admin: an incoming webhook URL, or a channel the bot posts to (where
    members are mentioned by their Slack id).
    """

    class Kind(models.TextChoices):
        SLACK_WEBHOOK = "slack_webhook", "Slack incoming webhook"
        SLACK_CHANNEL = "slack_channel", "Slack channel (bot)"

    name = models.CharField(max_length=100, help_text="For staff, e.g. #thalys-bookings.")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.SLACK_WEBHOOK)
    webhook_url = models.URLField(max_length=500, blank=True, help_text="For a webhook: https://hooks.slack.com/services/…")
    channel = models.CharField(max_length=80, blank=True, help_text="For the bot: a channel id (C…) the bot is a member of.")
    server = models.ForeignKey("reservations.Server", null=True, blank=True, on_delete=models.CASCADE, related_name="destinations")
    room = models.ForeignKey("reservations.Room", null=True, blank=True, on_delete=models.CASCADE, related_name="destinations")
    events = models.JSONField(
        default=list, blank=True,
        help_text="Which events it hears about; empty means the usual ones (bookings for a resource; "
        "unbooked use and stale hosts for the whole lab).",
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(name="destination_server_or_room_or_lab", condition=~Q(server__isnull=False, room__isnull=False)),
        ]

    def __str__(self):
        return self.name

    @property
    def scope(self):
        if self.server_id:
            return describe_target(self.server.name, style=PLACE)
        if self.room_id:
            return describe_target(room=self.room.name)
        return "the whole lab"

    def hears(self, event):
        if self.events:
            return event in self.events
        resource_scoped = bool(self.server_id or self.room_id)
        return EVENTS[event].to_resources if resource_scoped else EVENTS[event].to_lab

    def clean(self):
        if self.kind == self.Kind.SLACK_WEBHOOK and not self.webhook_url:
            raise ValidationError({"webhook_url": "A webhook destination needs its URL (https://hooks.slack.com/services/…)."})
        if self.kind == self.Kind.SLACK_WEBHOOK and not self.webhook_url.lower().startswith(("https://", "http://")):
            raise ValidationError({"webhook_url": "A webhook URL starts with https:// (Slack's look like https://hooks.slack.com/services/…)."})
        if self.kind == self.Kind.SLACK_CHANNEL and not self.channel:
            raise ValidationError({"channel": "A bot destination needs a channel id, e.g. C012AB3CD."})
        if self.server_id and self.room_id:
            raise ValidationError("A destination belongs to a server, a room, or (with neither) the whole lab; not both.")
        unknown = [name for name in self.events or [] if name not in EVENTS]
        if unknown:
            raise ValidationError({"events": f"Unknown events: {', '.join(unknown)}. Known: {', '.join(EVENTS)}."})


class Preference(models.Model):
    """A member's choice of channels for one event; without a row the event's default applies."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences")
    event = models.CharField(max_length=30, choices=Event.choices)
    channels = models.JSONField(default=list, blank=True, help_text="Channel names, e.g. [\"slack_dm\", \"email\"]; empty: none.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "event"], name="preference_once_per_event")]

    def __str__(self):
        return f"{self.user} {self.event}: {', '.join(self.channels) or 'nothing'}"


class MessageTemplate(models.Model):
    """Staff's own text for one event on one kind of channel, replacing the file template."""

    class Family(models.TextChoices):
        SLACK = "slack", "Slack (direct message, channel, webhook)"
        EMAIL = "email", "E-mail"

    event = models.CharField(max_length=30, choices=Event.choices)
    family = models.CharField("channel", max_length=10, choices=Family.choices)
    subject = models.CharField(max_length=200, blank=True, help_text="E-mail only: the subject line (a template too).")
    body = models.TextField(help_text="The text (Slack mrkdwn, or the e-mail's plain text), as a Django template.")
    html = models.TextField(blank=True, help_text="E-mail only: an HTML version; empty means the plain text is used alone.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["event", "family"]
        constraints = [models.UniqueConstraint(fields=["event", "family"], name="template_once_per_event_and_channel")]

    def __str__(self):
        return f"{self.get_event_display()} ({self.get_family_display()})"


class OutboxRow(models.Model):
    """What an outbox event and a message share: the key that makes it once, the event, and its tries."""

    key = models.CharField(max_length=200, unique=True)
    event = models.CharField(max_length=30, choices=Event.choices)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]


class Notification(OutboxRow):
    """One message to one member or destination on one channel: the outbox row.

    Written in the transaction of the change that caused it; sent after commit by a task, or
    by the sweep when that task never ran. `key` is unique, so the same message is never queued
    twice (a reminder found by two beats, an alert seen by two detectors).
    """

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        SENDING = "sending", "sending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"

    channel = models.CharField(max_length=20)
    booking = models.ForeignKey("reservations.Booking", null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    alert = models.ForeignKey("monitoring.Alert", null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    destination = models.ForeignKey(Destination, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    payload = models.JSONField(help_text="The rendered message: text, and blocks (Slack) or subject, html and attachments (e-mail).")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    next_attempt_at = models.DateTimeField(help_text="When it is (next) due; a claimed message's lease ends here.")
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta(OutboxRow.Meta):
        indexes = [
            # The sweep: what is due, oldest first; sent and failed rows are never looked at.
            models.Index(fields=["next_attempt_at"], condition=Q(state__in=["pending", "sending"]), name="notification_due"),
        ]
        constraints = [
            models.CheckConstraint(
                name="notification_has_one_addressee",
                condition=Q(recipient__isnull=False, destination__isnull=True) | Q(recipient__isnull=True, destination__isnull=False),
            ),
        ]

    def __str__(self):
        return f"{self.get_event_display()} → {self.addressee} ({self.channel}, {self.state})"

    @property
    def addressee(self):
        return self.destination.name if self.destination_id else self.recipient.get_username()


class OutboxEvent(OutboxRow):
    """What happened (a booking created, moved, cancelled; an alert opened): the outbox's first step.

    Written in the transaction of the change, one row per occasion and nothing else, so the
    change stays cheap. After commit a worker expands it (renders the messages and writes one
    Notification per recipient and channel, in one transaction) and sends them; the sweep expands
    what no worker did. `key` is the occasion's key, the prefix of its messages' keys.
    """

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        # Claimed: the claim commits only with the rows, so others see pending (crashed: retried) or expanded.
        EXPANDING = "expanding", "expanding"
        EXPANDED = "expanded", "expanded"
        # Its expansion failed NOTIFY_MAX_ATTEMPTS times: left for staff ("Expand now" retries it).
        FAILED = "failed", "failed"

    booking = models.ForeignKey("reservations.Booking", null=True, blank=True, on_delete=models.CASCADE, related_name="outbox_events")
    alert = models.ForeignKey("monitoring.Alert", null=True, blank=True, on_delete=models.CASCADE, related_name="outbox_events")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    context = models.JSONField(default=dict, blank=True, help_text="What rendering needs that the booking may no longer say, e.g. the times before and after a change.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    next_attempt_at = models.DateTimeField(help_text="When it is (next) due for expansion; a claimed event's lease ends here.")
    expanded_at = models.DateTimeField(null=True, blank=True)

    class Meta(OutboxRow.Meta):
        verbose_name = "outbox event"
        indexes = [
            # The sweep: events due for expansion, oldest first; expanded ones are never looked at.
            models.Index(fields=["next_attempt_at"], condition=Q(state__in=["pending", "expanding"]), name="outbox_event_due"),
        ]

    def __str__(self):
        return f"{self.key} ({self.state})"
