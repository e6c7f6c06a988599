"""Bookings, the Allocation rows through which they hold units, and series of bookings.

The database refuses two active allocations of one unit that overlap: an exclusion
constraint on PostgreSQL, triggers on SQLite (see Allocation).
"""

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeBoundary, RangeOperators
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models import Q
from django.utils import timezone

from ..parsing import EARLIEST, LATEST, describe_target, format_shares
from ..text import refuse_control_characters
from .resources import Device, Room, Server, Unit

# Rows outside the times labres reads at all are refused by the database too: a booking in year
# 10000 (9999-12-31 23:00 west of UTC) could be stored by PostgreSQL but not read back by Python.
WITHIN_REACH = Q(start__gte=EARLIEST, end__lte=LATEST)


class _TimeQuerySet(models.QuerySet):
    """The time questions bookings and allocations are asked; both are half-open intervals [start, end)."""

    def overlapping(self, start, end):
        """Rows that share some time with [start, end): back-to-back rows do not."""
        return self.filter(start__lt=end, end__gt=start)

    def at(self, moment):
        """Rows running at `moment`: started by then, not yet ended."""
        return self.filter(start__lte=moment, end__gt=moment)


class BookingQuerySet(_TimeQuerySet):
    def holding(self):
        """Bookings that hold their units: confirmed, pending, or released early (until their end)."""
        return self.filter(status__in=Booking.HOLDING)


class AllocationQuerySet(_TimeQuerySet):
    def active(self):
        """Allocations that hold their unit; a cancelled or declined booking's allocations do not."""
        return self.filter(active=True)


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

    objects = BookingQuerySet.as_manager()

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
        """What is booked, written the way people type it: thalys:0-1, thalys (whole server), room Lab 2."""
        if self.room_id:
            return describe_target(room=self.room.name)
        return describe_target(self.server.name, self.gpu_indices(), whole=self.whole_server, shares=self.shares)

    def gpu_indices(self) -> list[int]:
        """The indices of the GPUs booked one by one ([] for a whole server): from the prefetched allocations
        (with their units and devices) where a list loaded them, else in one query, not one per GPU."""
        if self.whole_server or self.room_id:
            return []
        if "allocations" in getattr(self, "_prefetched_objects_cache", {}):
            return [a.unit.device.index for a in self.allocations.all() if a.unit.device_id]
        return list(Device.objects.filter(unit__allocations__booking=self).values_list("index", flat=True))

    @property
    def shares(self):
        """'16 CPU cores, 64 GiB' of the server's pooled capacities, or ''."""
        return format_shares(self.cpu_cores, self.memory_gib)

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


class TsTzRange(models.Func):
    """PostgreSQL's tstzrange(start, end, '[)'): the half-open interval a booking holds."""

    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


class PostgresExclusionConstraint(ExclusionConstraint):
    """Django's ExclusionConstraint on PostgreSQL; on other databases it writes and checks nothing.

    Django would send its EXCLUDE clause to SQLite too (when it rebuilds a table, or validates a
    form's model): there migration 0002's triggers refuse the overlaps instead.
    """

    def constraint_sql(self, model, schema_editor):
        return super().constraint_sql(model, schema_editor) if schema_editor.connection.vendor == "postgresql" else None

    def create_sql(self, model, schema_editor):
        return super().create_sql(model, schema_editor) if schema_editor.connection.vendor == "postgresql" else None

    def remove_sql(self, model, schema_editor):
        return super().remove_sql(model, schema_editor) if schema_editor.connection.vendor == "postgresql" else None

    def validate(self, model, instance, exclude=None, using=DEFAULT_DB_ALIAS):
        if connections[using].vendor == "postgresql":
            super().validate(model, instance, exclude=exclude, using=using)


class Allocation(models.Model):
    """A booking's hold on one unit; the rows the non-overlap constraint is checked on."""

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="allocations")
    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="allocations")
    start = models.DateTimeField()
    end = models.DateTimeField()
    active = models.BooleanField(default=True)

    objects = AllocationQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(name="allocation_end_after_start", condition=Q(end__gt=models.F("start"))),
            models.CheckConstraint(name="allocation_within_reach", condition=WITHIN_REACH),
            models.UniqueConstraint(fields=["booking", "unit"], name="allocation_unit_once_per_booking"),
            # The invariant (DESIGN.md): no two active allocations of one unit overlap. Created by
            # migration 0002 with btree_gist (declared here since 0019); SQLite has triggers instead.
            PostgresExclusionConstraint(
                name="allocation_no_overlap",
                expressions=[("unit", RangeOperators.EQUAL), (TsTzRange("start", "end", RangeBoundary()), RangeOperators.OVERLAPS)],
                condition=Q(active=True),
            ),
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
        from ..recurrence import DAYS, describe, rule_parts

        rule = self.rule
        if rule_parts(rule)["FREQ"] == "WEEKLY" and "BYDAY" not in rule_parts(rule):
            rule += f";BYDAY={DAYS[self.first_date.weekday()]}"  # the day it repeats on is the first date's
        return describe(rule, at=f" at {self.start_time:%H:%M} ({self.time_zone})", until=self.until)
