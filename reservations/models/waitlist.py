"""Waiting-list entries: members waiting for units to come free.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from ..parsing import PROSE, describe_target, format_shares, parse_device_set
from ..text import refuse_control_characters
from .bookings import Booking
from .resources import Room, Server


class WaitlistEntry(models.Model):
    """A member's "tell me when": N GPUs of a server (or the whole server, or a room) free from now for a length.

    Entries of one server or room wait in line by `queued_at` (when they joined; an offer that
    ran out unclaimed sends its entry to the back). When something frees up, the first entry
    whose request fits from now is offered the slot (see reservations/waitlist.py); the offer
    holds for WAITLIST_OFFER_MINUTES and is claimed with one click (a single-use token).
    """

    class State(models.TextChoices):
        WAITING = "waiting", "waiting"
        OFFERED = "offered", "offered"
        CLAIMED = "claimed", "claimed"
        WITHDRAWN = "withdrawn", "withdrawn"
        LAPSED = "lapsed", "lapsed"

    OPEN = (State.WAITING, State.OFFERED)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="waitlist_entries", verbose_name="member")
    server = models.ForeignKey(Server, null=True, blank=True, on_delete=models.CASCADE, related_name="waitlist_entries")
    gpus = models.PositiveSmallIntegerField(
        null=True, blank=True, verbose_name="GPUs", help_text="How many GPUs; empty: the whole server; 0: CPU cores and memory alone.",
    )
    # What the member had picked on the booking form (a device set): an offer of other GPUs says so.
    wanted_devices = models.CharField(max_length=200, blank=True, verbose_name="GPUs picked")
    cpu_cores = models.PositiveIntegerField(default=0, verbose_name="CPU cores", help_text="Pooled CPU cores asked for, with the GPUs or alone.")
    memory_gib = models.PositiveIntegerField(default=0, verbose_name="memory (GiB)", help_text="Pooled memory asked for, with the GPUs or alone.")
    room = models.ForeignKey(Room, null=True, blank=True, on_delete=models.CASCADE, related_name="waitlist_entries")
    length = models.DurationField(help_text="How long the booking would last.")
    not_after = models.DateTimeField(help_text="The latest useful start; the entry lapses after it.")
    purpose = models.CharField(max_length=200, blank=True, validators=[refuse_control_characters])
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(db_index=True, help_text="Its place in line: earlier is first.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.WAITING)
    # The open offer: which GPUs (a device set; empty for a whole server or a room), until when.
    offered_devices = models.CharField(max_length=200, blank=True)
    offered_at = models.DateTimeField(null=True, blank=True)
    offer_expires_at = models.DateTimeField(null=True, blank=True)
    offers = models.PositiveSmallIntegerField(default=0, help_text="How many offers it has had (each one's messages have their own key).")
    ignored_offers = models.PositiveSmallIntegerField(default=0)
    token = models.CharField(max_length=64, blank=True, editable=False, help_text="The open offer's single-use secret.")
    booking = models.ForeignKey(Booking, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="What the claim booked.")
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["queued_at", "pk"]
        verbose_name = "waitlist entry"
        verbose_name_plural = "waitlist entries"
        constraints = [
            models.CheckConstraint(
                name="waitlist_server_xor_room",
                condition=Q(server__isnull=False, room__isnull=True) | Q(server__isnull=True, room__isnull=False, gpus__isnull=True),
                violation_error_message="Wait for GPUs of a server, a whole server, or a room.",
            ),
            # One open entry per member and server or room: a second would only jump their own line.
            models.UniqueConstraint(
                fields=["user", "server"], condition=Q(state__in=["waiting", "offered"], server__isnull=False), name="waitlist_one_open_per_server",
            ),
            models.UniqueConstraint(
                fields=["user", "room"], condition=Q(state__in=["waiting", "offered"], room__isnull=False), name="waitlist_one_open_per_room",
            ),
        ]
        indexes = [
            models.Index(fields=["server", "queued_at"], condition=Q(state__in=["waiting", "offered"]), name="waitlist_open_server"),
            models.Index(fields=["room", "queued_at"], condition=Q(state__in=["waiting", "offered"]), name="waitlist_open_room"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.user.get_username()}: {self.what} for {self.length_text} ({self.state})"

    @property
    def what(self):
        """'2 GPUs on thalys', 'thalys (whole server)', 'room Lab 2', '16 CPU cores on thalys', '2 GPUs on thalys + 64 GiB'."""
        if self.room_id:
            return describe_target(room=self.room.name)
        return describe_target(self.server.name, whole=self.gpus is None, count=self.gpus, shares=self.amounts_text, style=PROSE)

    @property
    def offered_what(self):
        """What the open offer books, as people type it: thalys:2-3, thalys (whole server), room Lab 2."""
        if self.server_id and self.gpus and self.offered_devices:
            return describe_target(self.server.name, parse_device_set(self.offered_devices), shares=self.amounts_text)
        return self.what

    @property
    def amounts_text(self):
        """'16 CPU cores, 64 GiB': the pooled amounts asked for, or ''."""
        return format_shares(self.cpu_cores, self.memory_gib)

    @property
    def offer_note(self):
        """'Not the GPUs you picked (0-1): these were free first.' when the open offer is of other GPUs; else ''."""
        if not (self.wanted_devices and self.offered_devices) or self.wanted_devices == self.offered_devices:
            return ""
        wanted, offered = set(parse_device_set(self.wanted_devices)), set(parse_device_set(self.offered_devices))
        if offered <= wanted:
            return ""
        return (
            f"Not the GPUs you picked ({self.wanted_devices}): you asked for any {self.gpus}, and {self.offered_devices} "
            f"{'was' if len(offered) == 1 else 'were'} free first."
        )

    @property
    def length_text(self):
        from ..parsing import format_duration

        return format_duration(self.length)

    @property
    def is_open(self):
        return self.state in self.OPEN


# --- recurring bookings -----------------------------------------------------------------------
