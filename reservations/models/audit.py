"""The audit log: who did what to a booking, when, from which surface, with what it changed.

Written by reservations.services.audit.log_action inside the same transaction as the change, so
an entry exists exactly when the change does. Read on the booking page, in the admin and by the API.
"""
from datetime import datetime

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from ..parsing import format_moment
from .bookings import Booking, BookingSeries
from .members import member_name

# The fields an entry's `changes` may name, in the order they are shown.
AUDITED_FIELDS = ("status", "decision", "start", "end", "purpose")
TIME_FIELDS = ("start", "end")

# Where an action came from: a surface a booking is made through (Booking.Source), or the system
# itself (Celery tasks, beat, management commands).
SURFACES = models.TextChoices(
    "Surface", [*((source.name, (source.value, source.label)) for source in Booking.Source), ("SYSTEM", ("system", "system"))],
)


class BookingAuditEntry(models.Model):
    """One action on one booking: {field: [before, after]} for what it changed, and a note (a decline's reason)."""

    class Action(models.TextChoices):
        CREATED = "created", "created"
        CHANGED = "changed", "changed"
        EXTENDED = "extended", "extended"
        CANCELLED = "cancelled", "cancelled"
        RELEASED = "released", "released"
        APPROVED = "approved", "approved"
        DECLINED = "declined", "declined"
        EXPIRED = "expired", "expired"

    Surface = SURFACES

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="audit_entries")
    series = models.ForeignKey(BookingSeries, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries")
    action = models.CharField(max_length=10, choices=Action.choices)
    # None: the system acted (an expiry); a user who is deleted later leaves the entry without a name.
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    surface = models.CharField(max_length=6, choices=Surface.choices)
    at = models.DateTimeField(default=timezone.now)
    changes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = "booking audit entry"
        verbose_name_plural = "booking audit entries"
        indexes = [models.Index(fields=["booking", "at"], name="audit_booking_at")]

    def __str__(self):
        return f"#{self.booking_id} {self.action} via {self.surface} at {self.at:%Y-%m-%d %H:%M}"

    def summary(self):
        """'cancelled by Alice Liddell via web at Tue 24 Nov 10:00' (the active zone's time); the system acts unnamed."""
        who = f" by {member_name(self.actor)}" if self.actor_id else ""
        return f"{self.get_action_display()}{who} via {self.get_surface_display()} at {format_moment(timezone.localtime(self.at))}"

    def changed_fields(self):
        """[(field, before, after)] in a fixed order, times read back as aware datetimes."""
        return [(name, *(_read_back(name, value) for value in self.changes[name])) for name in AUDITED_FIELDS if name in self.changes]

    def changes_text(self):
        """'end: Tue 24 Nov 12:00 → Tue 24 Nov 13:00; purpose: — → training', times in the active zone."""
        return "; ".join(f"{name}: {_shown(before)} → {_shown(after)}" for name, before, after in self.changed_fields())


def _read_back(name, value):
    """JSON keeps times as ISO text; give them back as datetimes, to be shown in the reader's zone."""
    if name in TIME_FIELDS and isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


def _shown(value):
    if isinstance(value, datetime):
        return format_moment(timezone.localtime(value))
    return value if value not in ("", None) else "—"
