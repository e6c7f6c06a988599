"""Servers, their GPUs and rooms, and the Unit rows that make each of them bookable.
"""

from django.db import models
from django.db.models import Q

from ..parsing import PLACE, PROSE, describe_target


class BookableTarget(models.Model):
    """What a server and a room share: their stamps, their order by name, and the Unit that makes each bookable."""

    unit_kind = None  # the Unit.Kind of the Unit save() makes (a string: Unit is defined below)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        # A server's Unit points at it through Unit.server, a room's through Unit.room.
        Unit.objects.get_or_create(kind=self.unit_kind, **{self._meta.model_name: self})


class Server(BookableTarget):
    unit_kind = "server"

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
        return describe_target(self.server.name, [self.index], style=PROSE)

    def save(self, *args, **kwargs):
        # Its Unit, as a server's and a room's; the allocations of whole-server bookings that hold
        # a GPU added later are services.register_device's business.
        super().save(*args, **kwargs)
        Unit.objects.get_or_create(kind=Unit.Kind.GPU, device=self, defaults={"server_id": self.server_id})


class Room(BookableTarget):
    unit_kind = "room"

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
            return describe_target(self.server.name, style=PLACE)
        return describe_target(room=self.room.name)
