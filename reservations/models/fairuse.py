"""Fair-use limits per member, group, server or room.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce

from ..parsing import PLACE, describe_target
from .members import MemberGroup
from .resources import Room, Server


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
            return describe_target(self.server.name, style=PLACE)
        if self.room_id:
            return describe_target(room=self.room.name)
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

        from ..parsing import ParseError, parse_duration

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
