"""Servers, their GPUs, rooms, and bookings of them.

Every bookable thing has one Unit row: a GPU, a room, or a server as a whole. A booking
holds its units through Allocation rows, which carry the booking's interval and whether it
is active; the database refuses two active allocations of one unit that overlap
(see migrations 0002: an exclusion constraint on PostgreSQL, triggers on SQLite).
"""
import functools

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from .parsing import EARLIEST, LATEST
from .text import refuse_control_characters

# Rows outside the times labres reads at all are refused by the database too: a booking in year
# 10000 (9999-12-31 23:00 west of UTC) could be stored by PostgreSQL but not read back by Python.
WITHIN_REACH = Q(start__gte=EARLIEST, end__lte=LATEST)


class Server(models.Model):
    name = models.SlugField(max_length=64, unique=True, help_text="Short name used in device sets, e.g. thalys:0-1.")
    hostname = models.CharField(max_length=255, blank=True, help_text="Fully qualified host name, if it differs from the name.")
    location = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True, help_text="Inactive servers cannot be booked.")
    monitored = models.BooleanField(
        default=True, help_text="A host agent samples this server's GPUs (off for machines without one, e.g. CPU-only)."
    )
    cpu_cores = models.PositiveIntegerField(
        null=True, blank=True, verbose_name="pooled CPU cores",
        help_text="CPU cores bookings share (with or without GPUs); empty: not booked by the core.",
    )
    memory_gib = models.PositiveIntegerField(
        null=True, blank=True, verbose_name="pooled memory (GiB)",
        help_text="Memory bookings share, in GiB; empty: not booked by the GiB.",
    )
    release_idle_bookings = models.BooleanField(
        default=False,
        help_text="Release a running booking of this server's GPUs once it is found idle (its owner is told either way).",
    )
    requires_approval = models.BooleanField(
        default=False,
        help_text="Members' bookings of this server (its GPUs, all of it, or a share) wait for staff to approve them; "
        "they hold their time meanwhile and expire if nobody decides by their start.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        Unit.objects.get_or_create(kind=Unit.Kind.SERVER, server=self)


class Device(models.Model):
    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="devices")
    index = models.PositiveSmallIntegerField(help_text="The GPU's index on its server, as nvidia-smi numbers it.")
    model = models.CharField(max_length=100, blank=True, help_text="e.g. NVIDIA A100-SXM4-80GB")
    memory_mib = models.PositiveIntegerField(null=True, blank=True, verbose_name="memory (MiB)")
    uuid = models.CharField(max_length=64, blank=True, verbose_name="UUID")
    active = models.BooleanField(default=True, help_text="Inactive GPUs cannot be booked on their own.")

    class Meta:
        ordering = ["server__name", "index"]
        constraints = [
            models.UniqueConstraint(fields=["server", "index"], name="device_unique_index_per_server"),
            models.UniqueConstraint(fields=["uuid"], condition=~Q(uuid=""), name="device_unique_uuid"),
        ]

    def __str__(self):
        return f"{self.server.name}:{self.index}"

    @property
    def label(self):
        return f"GPU {self.index} on {self.server.name}"

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        unit, created = Unit.objects.get_or_create(kind=Unit.Kind.GPU, device=self, defaults={"server_id": self.server_id})
        if created:
            # A whole-server booking holds every GPU of its server, including one added later.
            Allocation.objects.bulk_create(
                Allocation(booking=booking, unit=unit, start=booking.start, end=booking.end)
                for booking in Booking.objects.filter(
                    server_id=self.server_id, whole_server=True, status__in=Booking.HOLDING, end__gt=timezone.now()
                )
            )


class Room(models.Model):
    name = models.CharField(max_length=100, unique=True)
    capacity = models.PositiveIntegerField(null=True, blank=True, help_text="Seats.")
    location = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True, help_text="Inactive rooms cannot be booked.")
    requires_approval = models.BooleanField(
        default=False,
        help_text="Members' bookings of this room wait for staff to approve them; they hold their time meanwhile "
        "and expire if nobody decides by their start.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        Unit.objects.get_or_create(kind=Unit.Kind.ROOM, room=self)


class Unit(models.Model):
    """One bookable thing: a GPU, a room, or a server as a whole."""

    class Kind(models.TextChoices):
        GPU = "gpu", "GPU"
        SERVER = "server", "whole server"
        ROOM = "room", "room"

    kind = models.CharField(max_length=6, choices=Kind.choices)
    server = models.ForeignKey(Server, null=True, blank=True, on_delete=models.CASCADE, related_name="units")
    device = models.OneToOneField(Device, null=True, blank=True, on_delete=models.CASCADE, related_name="unit")
    room = models.OneToOneField(Room, null=True, blank=True, on_delete=models.CASCADE, related_name="unit")

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="unit_kind_matches_target",
                condition=(
                    Q(kind="gpu", server__isnull=False, device__isnull=False, room__isnull=True)
                    | Q(kind="server", server__isnull=False, device__isnull=True, room__isnull=True)
                    | Q(kind="room", server__isnull=True, device__isnull=True, room__isnull=False)
                ),
            ),
            models.UniqueConstraint(fields=["server"], condition=Q(kind="server"), name="unit_one_per_server"),
        ]

    def __str__(self):
        return self.label

    @property
    def label(self):
        if self.kind == self.Kind.GPU:
            return self.device.label
        if self.kind == self.Kind.SERVER:
            return f"server {self.server.name}"
        return f"room {self.room.name}"


class Booking(models.Model):
    class Status(models.TextChoices):
        CONFIRMED = "confirmed", "confirmed"
        CANCELLED = "cancelled", "cancelled"
        RELEASED = "released", "released early"
        PENDING = "pending", "awaiting approval"

    class Decision(models.TextChoices):
        APPROVED = "approved", "approved"
        DECLINED = "declined", "declined"
        EXPIRED = "expired", "expired undecided"

    class Source(models.TextChoices):
        WEB = "web", "web"
        API = "api", "API"
        SLACK = "slack", "Slack"
        CLI = "cli", "command line"
        ADMIN = "admin", "admin"
        CALENDAR = "ics", "calendar import"

    # Bookings in these states hold their units (a released booking holds them until it ended;
    # a pending one holds them while staff decide, so what they approve is still free).
    HOLDING = (Status.CONFIRMED, Status.RELEASED, Status.PENDING)
    # Not ended and not given up: what a member still has (upcoming or running, approved or not).
    LIVE = (Status.CONFIRMED, Status.PENDING)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings")
    purpose = models.CharField(max_length=200, blank=True, validators=[refuse_control_characters])
    start = models.DateTimeField()
    end = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CONFIRMED)
    source = models.CharField(max_length=5, choices=Source.choices, default=Source.WEB)
    # What was booked: GPUs of a server (see allocations), a whole server, or a room.
    server = models.ForeignKey(Server, null=True, blank=True, on_delete=models.PROTECT, related_name="bookings")
    whole_server = models.BooleanField(default=False)
    room = models.ForeignKey(Room, null=True, blank=True, on_delete=models.PROTECT, related_name="bookings")
    # Shares of the server's pooled capacities (a whole-server booking takes all of them).
    cpu_cores = models.PositiveIntegerField(default=0, verbose_name="CPU cores")
    memory_gib = models.PositiveIntegerField(default=0, verbose_name="memory (GiB)")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # RFC 5545's SEQUENCE: grows with each change a calendar client must take over (times, status,
    # purpose), so clients replace their copy of the event instead of keeping the old one.
    sequence = models.PositiveIntegerField(default=0, editable=False)
    # One occurrence of a recurring booking; each stays a booking of its own (cancel, move, release).
    series = models.ForeignKey("BookingSeries", null=True, blank=True, on_delete=models.SET_NULL, related_name="bookings")
    # Approval (a resource with requires_approval): who decided, when, how, and why (shown on a decline).
    decision = models.CharField(max_length=8, choices=Decision.choices, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="decided_bookings",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(
        max_length=500, blank=True, validators=[refuse_control_characters], help_text="The reason given to the member on a decline.",
    )

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.CheckConstraint(name="booking_end_after_start", condition=Q(end__gt=models.F("start"))),
            models.CheckConstraint(name="booking_within_reach", condition=WITHIN_REACH),
            models.CheckConstraint(
                name="booking_server_xor_room",
                condition=(Q(server__isnull=False, room__isnull=True) | Q(server__isnull=True, room__isnull=False, whole_server=False)),
            ),
        ]
        indexes = [
            models.Index(fields=["user", "end"], name="booking_user_end"),
            models.Index(fields=["start", "end"], name="booking_window"),
            # Calendar feeds: a server's, a room's or the lab's bookings ending after a cutoff.
            models.Index(fields=["server", "end"], name="booking_server_end"),
            models.Index(fields=["room", "end"], name="booking_room_end"),
            models.Index(fields=["end"], name="booking_end"),
            # The expiry sweep: pending bookings by start (few rows ever match).
            models.Index(fields=["start"], condition=Q(status="pending"), name="booking_pending_start"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.what} {self.purpose}".strip()

    @property
    def what(self):
        """What is booked, written the way people type it: thalys:0-1, thalys (whole), room Lab 2."""
        from .parsing import format_device_set

        if self.room_id:
            return f"room {self.room.name}"
        if self.whole_server:
            return f"{self.server.name} (whole server)"
        indices = [a.unit.device.index for a in self.allocations.all() if a.unit.device_id]
        if not indices:
            return f"{self.server.name}: {self.shares}"
        return f"{self.server.name}:{format_device_set(indices)}" + (f" + {self.shares}" if self.shares else "")

    @property
    def shares(self):
        """'16 CPU cores, 64 GiB' of the server's pooled capacities, or ''."""
        parts = []
        if self.cpu_cores:
            parts.append(f"{self.cpu_cores} CPU core{'s' if self.cpu_cores != 1 else ''}")
        if self.memory_gib:
            parts.append(f"{self.memory_gib} GiB")
        return ", ".join(parts)

    @property
    def holds_units(self):
        return self.status in self.HOLDING

    @property
    def pending(self):
        return self.status == self.Status.PENDING

    def state(self, now=None):
        """upcoming, running, ended, cancelled, released or pending (awaiting approval): what a member sees."""
        now = now or timezone.now()
        if self.status == self.Status.CANCELLED:
            return "cancelled"
        if self.status == self.Status.RELEASED:
            return "released"
        if self.status == self.Status.PENDING:
            return "pending"
        if now < self.start:
            return "upcoming"
        if now < self.end:
            return "running"
        return "ended"


class Allocation(models.Model):
    """A booking's hold on one unit; the rows the non-overlap constraint is checked on."""

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="allocations")
    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="allocations")
    start = models.DateTimeField()
    end = models.DateTimeField()
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.CheckConstraint(name="allocation_end_after_start", condition=Q(end__gt=models.F("start"))),
            models.CheckConstraint(name="allocation_within_reach", condition=WITHIN_REACH),
            models.UniqueConstraint(fields=["booking", "unit"], name="allocation_unit_once_per_booking"),
        ]
        # The conflict lookup: active allocations of a unit that end after a given time.
        # Its cost depends on a unit's future bookings, not on how long the history is.
        indexes = [
            models.Index(fields=["unit", "end"], condition=Q(active=True), name="allocation_active_unit_end"),
            # What holds anything in a window (Now page, timeline): allocations ending after its
            # start; with history behind now, that is the future, not the past.
            models.Index(fields=["end", "start"], condition=Q(active=True), name="allocation_active_end_start"),
        ]

    def __str__(self):
        return f"{self.unit} {self.start:%Y-%m-%d %H:%M}–{self.end:%H:%M}"


@functools.cache
def _time_zone_choices():
    """The zones a profile may choose. Read once a process: available_timezones() walks the tz database's
    folders (about 45 ms), and every form with a time zone asked again (the admin's user page four times)."""
    import zoneinfo

    return [(name, name.replace("_", " ")) for name in sorted(zoneinfo.available_timezones()) if "/" in name or name == "UTC"]


class Profile(models.Model):
    """A member's own settings: the name others see, and the time zone times are shown in."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    display_name = models.CharField(
        max_length=100, blank=True, validators=[refuse_control_characters], help_text="How others see you; empty means your full name.",
    )
    time_zone = models.CharField(max_length=64, blank=True, choices=_time_zone_choices, help_text="Empty means the lab's time zone.")
    unix_username = models.CharField(
        max_length=32,
        blank=True,
        verbose_name="unix user name",
        validators=[RegexValidator(r"^[a-z_][a-z0-9_.-]*\$?$", "Write the user name as on the GPU hosts, e.g. alice or a.liddell.")],
        help_text="Your user name on the GPU hosts, so your processes there are matched to your bookings.",
    )
    group = models.ForeignKey(
        "MemberGroup", null=True, blank=True, on_delete=models.SET_NULL, related_name="members",
        verbose_name="primary group", help_text="The group whose limits apply to this member (and its parents' limits).",
    )
    slack_user_id = models.CharField(
        max_length=32,
        blank=True,
        verbose_name="Slack user id",
        validators=[RegexValidator(r"^[UW][A-Z0-9]{2,}$", "A Slack user id looks like U012ABCDEF.")],
        help_text="Your Slack member id (U…), for direct messages and mentions; found from your e-mail when Slack is set up.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["unix_username"], condition=~Q(unix_username=""), name="profile_unix_username_unique",
                violation_error_message="Another member already has this unix user name.",
            ),
            models.UniqueConstraint(
                fields=["slack_user_id"], condition=~Q(slack_user_id=""), name="profile_slack_user_id_unique",
                violation_error_message="Another member is already linked to this Slack account.",
            ),
        ]

    def __str__(self):
        return f"profile of {self.user.get_username()}"


def member_name(user):
    """The name a member goes by: display name, else full name, else user name."""
    try:
        display = user.profile.display_name
    except Profile.DoesNotExist:
        display = ""
    return display_name_of(display, user.first_name, user.last_name, user.get_username())


def display_name_of(display_name, first_name, last_name, username):
    """member_name from its parts, for reads that fetch columns rather than users."""
    return display_name or f"{first_name or ''} {last_name or ''}".strip() or username


class ApiToken(models.Model):
    """A named token a member made for scripts and the CLI; only a hash of it is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8, help_text="The first characters, to tell tokens apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash(key):
        import hashlib

        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name):
        """Make a token; returns (token, key). The key is shown once and never stored."""
        import secrets

        key = secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name.strip() or "token", prefix=key[:8], key_hash=cls.hash(key))
        return token, key


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
            return f"labres: server {server}"
        if scope == cls.Scope.ROOM:
            return f"labres: room {room}"
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

    @classmethod
    def find(cls, token):
        """The active member's feed whose address holds `token`, or None; the secret part is compared in constant time."""
        import hmac

        if not isinstance(token, str) or len(token) <= cls.SELECTOR_LENGTH or len(token) > 128:
            return None
        # Polled by calendar apps all day: plain SQL, one small join (a retired member's feeds stop);
        # server, room and names load only for a full answer.
        user_table = cls._meta.get_field("user").related_model._meta.db_table
        sql = (
            f"SELECT f.* FROM {cls._meta.db_table} f INNER JOIN {user_table} u ON u.id = f.user_id"
            " WHERE f.selector = %s AND u.is_active"
        )
        feed = next(iter(cls.objects.raw(sql, [token[: cls.SELECTOR_LENGTH]])), None)
        if feed is None or not hmac.compare_digest(feed.secret.encode(), token[cls.SELECTOR_LENGTH :].encode()):
            return None
        return feed


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
        return f"server {self.server.name}" if self.server_id else f"room {self.room.name}"


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


class MemberGroup(models.Model):
    """A group of members with limits, inheriting its parent's (Everyone -> Students)."""

    name = models.CharField(max_length=100, unique=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children",
        help_text="Limits this group does not set itself come from here.",
    )
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "member group"

    def __str__(self):
        return self.name

    def clean(self):
        from django.core.exceptions import ValidationError

        group = self.parent
        while group is not None:
            if group.pk == self.pk:
                raise ValidationError({"parent": "A group cannot be its own ancestor; choose another parent."})
            group = group.parent


class Limit(models.Model):
    """One fair-use rule, on a group (its subgroups inherit it) or on one member (an override).

    A rule may hold everywhere or on one server or room. For a member, a booking and a kind of
    rule, the one that counts is the most specific: the member's own over their group's over
    the parents', and on each of those a rule for the booked server or room over a general one.
    Staff are exempt unless the rule says it applies to them.
    """

    class Kind(models.TextChoices):
        MAX_GPUS = "max_gpus", "most GPUs held at once"
        MAX_LENGTH = "max_length", "longest booking"
        MAX_AHEAD = "max_ahead", "how far ahead a booking may start"
        GPU_HOURS_WEEK = "gpu_hours_week", "GPU-hours per rolling week"
        ACCESS = "access", "may book"

    NUMBER_KINDS = (Kind.MAX_GPUS, Kind.GPU_HOURS_WEEK)
    DURATION_KINDS = (Kind.MAX_LENGTH, Kind.MAX_AHEAD)

    kind = models.CharField(max_length=20, choices=Kind.choices)
    group = models.ForeignKey(MemberGroup, null=True, blank=True, on_delete=models.CASCADE, related_name="limits")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="limits", verbose_name="member",
    )
    server = models.ForeignKey(Server, null=True, blank=True, on_delete=models.CASCADE, related_name="limits", help_text="Only on this server (empty: everywhere).")
    room = models.ForeignKey(Room, null=True, blank=True, on_delete=models.CASCADE, related_name="limits", help_text="Only in this room (empty: everywhere).")
    number = models.PositiveIntegerField(null=True, blank=True, help_text="GPUs at once, or GPU-hours per week.")
    duration = models.CharField(max_length=20, blank=True, help_text="Longest booking or how far ahead, e.g. 12h, 2d, 28d.")
    allowed = models.BooleanField(default=True, help_text="For 'may book': ticked allows, unticked forbids.")
    applies_to_staff = models.BooleanField(default=False, help_text="Staff are exempt from limits unless this is ticked.")

    class Meta:
        ordering = ["kind", "group__name", "user__username"]
        constraints = [
            models.CheckConstraint(
                name="limit_on_group_xor_member",
                condition=Q(group__isnull=False, user__isnull=True) | Q(group__isnull=True, user__isnull=False),
                violation_error_message="A limit belongs to a group or to one member, not both.",
            ),
            models.CheckConstraint(
                name="limit_on_at_most_one_resource",
                condition=Q(server__isnull=True) | Q(room__isnull=True),
                violation_error_message="A limit holds on one server, one room, or everywhere.",
            ),
            # An empty group, member, server or room counts as one value ("everywhere" once per owner). Written with
            # Coalesce rather than nulls_distinct=False, which SQLite lacks (Django skips it there, warning models.W047).
            models.UniqueConstraint(
                "kind", *(Coalesce(name, 0, output_field=models.BigIntegerField()) for name in ("group", "user", "server", "room")),
                name="limit_one_per_owner_and_place",
                violation_error_message="There is such a limit already for this group or member and place; change that one.",
            ),
        ]

    def __str__(self):
        return f"{self.owner_label}: {self.describe()}"

    @property
    def owner_label(self):
        return self.group.name if self.group_id else f"{self.user.get_username()} (personal)"

    @property
    def place(self):
        if self.server_id:
            return f"server {self.server.name}"
        if self.room_id:
            return f"room {self.room.name}"
        return ""

    def describe(self):
        """'at most 4 GPUs at once on server thalys'."""
        where = f" on {self.place}" if self.place else ""
        if self.kind == self.Kind.MAX_GPUS:
            return f"at most {self.number} GPU{'s' if self.number != 1 else ''} at once{where}"
        if self.kind == self.Kind.GPU_HOURS_WEEK:
            return f"at most {self.number} GPU-hours in any 7 days{where}"
        if self.kind == self.Kind.MAX_LENGTH:
            return f"bookings of at most {self.duration}{where}"
        if self.kind == self.Kind.MAX_AHEAD:
            return f"bookings starting at most {self.duration} ahead{where}"
        return f"{'may' if self.allowed else 'may not'} book{where or ' anything'}"

    def clean(self):
        from django.core.exceptions import ValidationError

        from .parsing import ParseError, parse_duration

        if self.kind in self.NUMBER_KINDS and not self.number:
            raise ValidationError({"number": "Give the number of GPUs or GPU-hours (at least 1)."})
        if self.kind in self.DURATION_KINDS:
            try:
                parse_duration(self.duration)
            except ParseError as error:
                raise ValidationError({"duration": f"{error} Write it like 12h, 2d or 28d."}) from None
        if self.kind == self.Kind.MAX_GPUS and self.room_id:
            raise ValidationError({"room": "Rooms have no GPUs; limit GPUs everywhere or on a server."})


# --- waitlist ---------------------------------------------------------------------------------


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
            return f"room {self.room.name}"
        if self.gpus is None:
            return f"{self.server.name} (whole server)"
        if not self.gpus:
            return f"{self.amounts_text} on {self.server.name}"
        return f"{self.gpus} GPU{'s' if self.gpus != 1 else ''} on {self.server.name}{self._with_amounts()}"

    @property
    def offered_what(self):
        """What the open offer books, as people type it: thalys:2-3, thalys (whole server), room Lab 2."""
        if self.server_id and self.gpus and self.offered_devices:
            return f"{self.server.name}:{self.offered_devices}{self._with_amounts()}"
        return self.what

    @property
    def amounts_text(self):
        """'16 CPU cores, 64 GiB': the pooled amounts asked for, or ''."""
        parts = [f"{self.cpu_cores} CPU core{'s' if self.cpu_cores != 1 else ''}" if self.cpu_cores else "", f"{self.memory_gib} GiB" if self.memory_gib else ""]
        return ", ".join(part for part in parts if part)

    def _with_amounts(self):
        return f" + {self.amounts_text}" if self.amounts_text else ""

    @property
    def offer_note(self):
        """'Not the GPUs you picked (0-1): these were free first.' when the open offer is of other GPUs; else ''."""
        if not (self.wanted_devices and self.offered_devices) or self.wanted_devices == self.offered_devices:
            return ""
        from .parsing import parse_device_set

        wanted, offered = set(parse_device_set(self.wanted_devices)), set(parse_device_set(self.offered_devices))
        if offered <= wanted:
            return ""
        return (
            f"Not the GPUs you picked ({self.wanted_devices}): you asked for any {self.gpus}, and {self.offered_devices} "
            f"{'was' if len(offered) == 1 else 'were'} free first."
        )

    @property
    def length_text(self):
        from .parsing import format_duration

        return format_duration(self.length)

    @property
    def is_open(self):
        return self.state in self.OPEN


# --- recurring bookings -----------------------------------------------------------------------


class BookingSeries(models.Model):
    """A recurring booking ("every Tuesday 10:00-11:00 until 15 Dec"): its rule, and its occurrences as bookings.

    The rule is read in the member's zone at creation: occurrences keep their wall-clock time
    across DST changes. Each occurrence is a Booking (series=this) that can be changed alone.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="booking_series", verbose_name="owner")
    rule = models.CharField(max_length=200, help_text="RFC 5545 RRULE without UNTIL, e.g. FREQ=WEEKLY;BYDAY=TU (COUNT allowed).")
    first_date = models.DateField(help_text="The date the rule starts from, in the series' time zone.")
    start_time = models.TimeField(help_text="Each occurrence's wall-clock start, in the series' time zone.")
    length = models.DurationField()
    time_zone = models.CharField(max_length=64)
    until = models.DateField(null=True, blank=True, help_text="The last date an occurrence may start on (empty: the rule has COUNT).")
    purpose = models.CharField(max_length=200, blank=True, validators=[refuse_control_characters])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "booking series"
        verbose_name_plural = "booking series"

    def __str__(self):
        return f"Series #{self.pk}: {self.describe()}"

    def describe(self):
        """'every week on Tuesday at 10:00 (Europe/Berlin) until 15 Dec 2026'."""
        from .recurrence import DAYS, describe, rule_parts

        rule = self.rule
        if rule_parts(rule)["FREQ"] == "WEEKLY" and "BYDAY" not in rule_parts(rule):
            rule += f";BYDAY={DAYS[self.first_date.weekday()]}"  # the day it repeats on is the first date's
        return describe(rule, at=f" at {self.start_time:%H:%M} ({self.time_zone})", until=self.until)


class SignInCounter(models.Model):
    """One counter of the password-guessing limits (reservations/signin.py): failures of an account,
    of an address, of an account at an address it knows; password reset e-mails. The key is a hash,
    so the table holds no user names or addresses; a row past `expires` counts as zero."""

    key = models.CharField(max_length=64, primary_key=True)
    count = models.IntegerField(default=0)
    expires = models.DateTimeField(db_index=True)

    def __str__(self):
        return f"{self.key}: {self.count} until {self.expires:%Y-%m-%d %H:%M}"
