"""Calendar feeds members subscribe to, and external calendars imported as bookings.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from ..parsing import PLACE, describe_target
from .bookings import Booking
from .members import member_name
from .resources import Room, Server


class CalendarFeed(models.Model):
    """A secret address a calendar app subscribes to: a member's own bookings, or a server's, a room's, the lab's.

    The address holds selector + secret: the selector finds the row (indexed), the secret is
    compared in constant time. Both are kept, so the profile page can show the address again;
    resetting makes new ones, and the old address answers 404.
    """

    class Scope(models.TextChoices):
        MINE = "mine", "my bookings"
        SERVER = "server", "a server"
        ROOM = "room", "a room"
        LAB = "lab", "the whole lab"

    SELECTOR_LENGTH = 12

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feeds")
    scope = models.CharField(max_length=6, choices=Scope.choices)
    server = models.ForeignKey(Server, null=True, blank=True, on_delete=models.CASCADE, related_name="calendar_feeds")
    room = models.ForeignKey(Room, null=True, blank=True, on_delete=models.CASCADE, related_name="calendar_feeds")
    selector = models.CharField(max_length=SELECTOR_LENGTH, unique=True, editable=False)
    secret = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, help_text="Last fetched by a calendar app (to the hour).")

    class Meta:
        ordering = ["scope", "server__name", "room__name"]
        constraints = [
            models.CheckConstraint(
                name="calendar_feed_scope_matches_target",
                condition=(
                    Q(scope__in=["mine", "lab"], server__isnull=True, room__isnull=True)
                    | Q(scope="server", server__isnull=False, room__isnull=True)
                    | Q(scope="room", server__isnull=True, room__isnull=False)
                ),
            ),
            models.UniqueConstraint(fields=["user", "scope"], condition=Q(scope__in=["mine", "lab"]), name="calendar_feed_one_own_and_lab"),
            models.UniqueConstraint(fields=["user", "server"], condition=Q(scope="server"), name="calendar_feed_one_per_server"),
            models.UniqueConstraint(fields=["user", "room"], condition=Q(scope="room"), name="calendar_feed_one_per_room"),
        ]

    def __str__(self):
        return f"{self.title} ({self.user.get_username()})"

    @property
    def token(self):
        return self.selector + self.secret

    @property
    def title(self):
        return self.title_of(
            self.scope,
            owner=member_name(self.user) if self.scope == self.Scope.MINE else "",
            server=self.server.name if self.server_id else "",
            room=self.room.name if self.room_id else "",
        )

    @classmethod
    def title_of(cls, scope, *, owner="", server="", room=""):
        """The calendar's name in calendar apps: 'labres: Alice Liddell', 'labres: server thalys', ..."""
        if scope == cls.Scope.MINE:
            return f"labres: {owner}"
        if scope == cls.Scope.SERVER:
            return f"labres: {describe_target(server, style=PLACE)}"
        if scope == cls.Scope.ROOM:
            return f"labres: {describe_target(room=room)}"
        return "labres: all bookings"

    def new_secret(self):
        """Give the feed a new address (the old one stops working once saved)."""
        import secrets

        self.selector = secrets.token_urlsafe(9)  # 12 characters
        self.secret = secrets.token_urlsafe(32)  # 43 characters, 256 bits

    def save(self, *args, **kwargs):
        if not self.selector:
            self.new_secret()
        super().save(*args, **kwargs)


class ExternalCalendar(models.Model):
    """An outside ICS address (e.g. a Google Calendar's secret address) whose events become bookings of one resource.

    Active calendars are fetched periodically (reservations.tasks.sync_calendars); the one-time
    `import_ics` command makes inactive ones. syncing_until is a lease: a sync claims it with a
    conditional UPDATE, so two workers or two beats never sync one calendar at once.
    """

    name = models.CharField(max_length=200)
    url = models.CharField(
        max_length=2000, verbose_name="address",
        help_text="The calendar's ICS address (http or https), e.g. a Google Calendar's secret address in iCal format.",
    )
    server = models.ForeignKey(Server, null=True, blank=True, on_delete=models.CASCADE, related_name="external_calendars")
    room = models.ForeignKey(Room, null=True, blank=True, on_delete=models.CASCADE, related_name="external_calendars")
    active = models.BooleanField(default=True, help_text="Fetched periodically; off for a one-time import.")
    notify_members = models.BooleanField(
        default=False, help_text="Tell members about bookings made, changed or cancelled by the import (off: imported quietly).",
    )
    last_fetched_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=200, blank=True, help_text="What the last sync did, e.g. 12 events: 9 booked, 1 updated, 2 conflicts.")
    last_error = models.TextField(blank=True, help_text="Why the last fetch failed; empty when it worked.")
    etag = models.CharField(max_length=500, blank=True, editable=False)
    last_modified = models.CharField(max_length=100, blank=True, editable=False)
    syncing_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                name="external_calendar_server_xor_room",
                condition=Q(server__isnull=False, room__isnull=True) | Q(server__isnull=True, room__isnull=False),
                violation_error_message="A calendar follows either a server or a room, not both and not neither.",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def resource(self):
        """What its events book, the way people write it: server thalys, room Lab 2."""
        return describe_target(self.server.name, style=PLACE) if self.server_id else describe_target(room=self.room.name)


class FeedStamp(models.Model):
    """One row counting changes to what calendar feeds show besides bookings: a server's or room's
    name or location, a GPU's index, a member's name, a series' rule. Part of every feed's ETag
    (reservations.feeds), so such a change reaches calendar apps, however soon after a fetch."""

    number = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"feed stamp {self.number}"


class ImportedEvent(models.Model):
    """One occurrence of an external calendar's event and what became of it: the booking, or why there is none."""

    class State(models.TextChoices):
        BOOKED = "booked", "booked"
        CONFLICT = "conflict", "conflict"
        UNMATCHED = "unmatched", "no such member"
        INVALID = "invalid", "cannot be read"
        CANCELLED = "cancelled", "cancelled"
        PAST = "past", "past"

    # The states staff should look at; retried on each sync, they may fit later.
    PROBLEMS = (State.CONFLICT, State.UNMATCHED, State.INVALID)

    # The calendar that showed the event last. An event is one per server or room, whichever file
    # or address brought it: an edited export imported under a new name moves the same booking.
    calendar = models.ForeignKey(ExternalCalendar, on_delete=models.CASCADE, related_name="events")
    server = models.ForeignKey(Server, null=True, blank=True, on_delete=models.CASCADE, related_name="+", editable=False)
    room = models.ForeignKey(Room, null=True, blank=True, on_delete=models.CASCADE, related_name="+", editable=False)
    uid = models.CharField(max_length=500, verbose_name="UID")
    recurrence = models.CharField(
        max_length=40, blank=True, help_text="The occurrence's original start (UTC, ISO) for a recurring event; empty otherwise.",
    )
    booking = models.ForeignKey(Booking, null=True, blank=True, on_delete=models.SET_NULL, related_name="imported_events")
    state = models.CharField(max_length=10, choices=State.choices)
    problem = models.TextField(blank=True, help_text="Why the event is not (or not exactly) a booking.")
    summary = models.CharField(max_length=500, blank=True, verbose_name="title")
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    source_sequence = models.IntegerField(default=0, help_text="The event's SEQUENCE in the source.")
    applied_hash = models.CharField(max_length=64, blank=True, editable=False, help_text="What was applied last, so an unchanged event costs no write.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["start", "uid"]
        constraints = [
            models.UniqueConstraint(
                fields=["server", "uid", "recurrence"], condition=models.Q(server__isnull=False), name="imported_event_unique_on_server",
            ),
            models.UniqueConstraint(
                fields=["room", "uid", "recurrence"], condition=models.Q(room__isnull=False), name="imported_event_unique_in_room",
            ),
        ]
        indexes = [models.Index(fields=["calendar", "state"], name="imported_event_calendar_state")]

    def __str__(self):
        return f"{self.summary or self.uid} ({self.get_state_display()})"


# --- fair use ---------------------------------------------------------------------------------
