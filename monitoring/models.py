"""What the GPU hosts report and what the portal makes of it.

HostStatus: each host's last word. GpuSample: raw per-GPU samples, kept briefly.
GpuMinute / GpuHour: rollups kept long. BookingUsage: a booking's actual use, settled when
it ends. Alert: idle bookings, unbooked use and stale hosts, open until the cause goes away.
"""
from django.conf import settings
from django.db import models
from django.db.models import Q


class HostStatus(models.Model):
    """The latest a GPU host said about itself: when, which driver, and NVML's error if it has one."""

    server = models.OneToOneField("reservations.Server", on_delete=models.CASCADE, related_name="host_status")
    last_seen_at = models.DateTimeField(help_text="When the host's latest reading was taken.")
    driver_version = models.CharField(max_length=64, blank=True)
    nvml_error = models.TextField(blank=True, verbose_name="NVML error", help_text="Empty while NVML works.")
    agent_version = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["server__name"]
        verbose_name = "host status"
        verbose_name_plural = "host statuses"

    def __str__(self):
        return f"{self.server.name} seen {self.last_seen_at:%Y-%m-%d %H:%M:%S}"


class GpuSample(models.Model):
    """One GPU at one moment; the metrics are null when the GPU could not be read (see error)."""

    device = models.ForeignKey("reservations.Device", on_delete=models.CASCADE, related_name="samples")
    taken_at = models.DateTimeField()
    gpu_util = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Percent.")
    mem_util = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Memory bandwidth use, percent.")
    memory_used_mib = models.PositiveIntegerField(null=True, blank=True, verbose_name="memory used (MiB)")
    temperature_c = models.SmallIntegerField(null=True, blank=True, verbose_name="temperature (°C)")
    power_w = models.FloatField(null=True, blank=True, verbose_name="power (W)")
    power_limit_w = models.FloatField(null=True, blank=True, verbose_name="power limit (W)")
    processes = models.JSONField(null=True, blank=True, help_text="[{pid, used_memory_mib, user}]; null when not visible.")
    processes_note = models.CharField(max_length=200, blank=True, help_text="Why the processes are not visible, if they are not.")
    error = models.TextField(blank=True, help_text="NVML's message when this GPU could not be read.")

    class Meta:
        ordering = ["-taken_at"]
        indexes = [
            models.Index(fields=["device", "taken_at"], name="gpusample_device_taken_at"),
            models.Index(fields=["taken_at"], name="gpusample_taken_at"),
        ]

    def __str__(self):
        return f"{self.device} at {self.taken_at:%Y-%m-%d %H:%M:%S}"


class Rollup(models.Model):
    """One GPU over one bucket (a minute or an hour): sums and peaks, so buckets add up exactly.

    `samples` counts the readable samples; averages are sums over it. A rollup of rollups
    equals the rollup of the raw samples (sums add, maxima take the max).
    """

    device = models.ForeignKey("reservations.Device", on_delete=models.CASCADE, related_name="+")
    bucket = models.DateTimeField(help_text="Start of the minute or hour, UTC.")
    samples = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0, help_text="Samples where the GPU could not be read.")
    gpu_util_sum = models.BigIntegerField(default=0)
    gpu_util_max = models.PositiveSmallIntegerField(null=True)
    # Samples at or above GPU_ACTIVE_PERCENT: busy time, for used GPU-hours.
    active_samples = models.PositiveIntegerField(default=0)
    mem_util_sum = models.BigIntegerField(default=0)
    memory_used_sum = models.BigIntegerField(default=0, help_text="MiB, summed over samples.")
    memory_used_max = models.PositiveIntegerField(null=True, help_text="Peak MiB.")
    temperature_max = models.SmallIntegerField(null=True)
    power_samples = models.PositiveIntegerField(default=0)
    power_sum = models.FloatField(default=0)
    power_max = models.FloatField(null=True)

    # Every summed or maximal field, in the order the rollup code computes them.
    SUMS = ("samples", "errors", "gpu_util_sum", "active_samples", "mem_util_sum", "memory_used_sum", "power_samples", "power_sum")
    MAXES = ("gpu_util_max", "memory_used_max", "temperature_max", "power_max")

    class Meta:
        abstract = True
        ordering = ["device", "bucket"]

    def __str__(self):
        return f"{self.device} at {self.bucket:%Y-%m-%d %H:%M}"

    @property
    def gpu_util_avg(self):
        return self.gpu_util_sum / self.samples if self.samples else None

    @property
    def mem_util_avg(self):
        return self.mem_util_sum / self.samples if self.samples else None

    @property
    def memory_used_avg(self):
        return self.memory_used_sum / self.samples if self.samples else None

    @property
    def power_avg(self):
        return self.power_sum / self.power_samples if self.power_samples else None


class GpuMinute(Rollup):
    class Meta(Rollup.Meta):
        verbose_name = "GPU minute"
        constraints = [models.UniqueConstraint(fields=["device", "bucket"], name="gpuminute_device_bucket")]
        indexes = [models.Index(fields=["bucket"], name="gpuminute_bucket")]


class GpuHour(Rollup):
    class Meta(Rollup.Meta):
        verbose_name = "GPU hour"
        constraints = [models.UniqueConstraint(fields=["device", "bucket"], name="gpuhour_device_bucket")]
        indexes = [models.Index(fields=["bucket"], name="gpuhour_bucket")]


class BookingUsage(models.Model):
    """What a booking's GPUs actually did while it ran; settled once it ended."""

    booking = models.OneToOneField("reservations.Booking", on_delete=models.CASCADE, related_name="usage")
    samples = models.PositiveIntegerField(help_text="Readable GPU samples during the booking (all its GPUs).")
    gpu_util_mean = models.FloatField(null=True, help_text="Percent, over all its GPUs and the whole booking.")
    gpu_util_peak = models.PositiveSmallIntegerField(null=True)
    memory_peak_mib = models.PositiveIntegerField(null=True, verbose_name="memory peak (MiB)")
    booked_gpu_hours = models.FloatField()
    used_gpu_hours = models.FloatField(help_text="GPU-hours spent at or above the active threshold.")
    source = models.CharField(max_length=10, help_text="The resolution it was computed from: raw, minute or hour.")
    settled_at = models.DateTimeField()

    class Meta:
        verbose_name = "booking usage"
        verbose_name_plural = "booking usage"

    def __str__(self):
        return f"usage of booking #{self.booking_id}"


class Alert(models.Model):
    """Something staff or a member should know from telemetry. Open while the cause lasts;
    one open alert per cause (its key), so a detector run twice changes nothing."""

    class Kind(models.TextChoices):
        IDLE_BOOKING = "idle_booking", "idle booking"
        UNBOOKED_USE = "unbooked_use", "unbooked use"
        HOST_STALE = "host_stale", "host stale"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    key = models.CharField(max_length=120, help_text="The cause, e.g. idle:42 or unbooked:7:bob.")
    server = models.ForeignKey("reservations.Server", on_delete=models.CASCADE, related_name="alerts")
    device = models.ForeignKey("reservations.Device", null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    booking = models.ForeignKey("reservations.Booking", null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts",
        help_text="The member concerned: the booking's owner, or the member running an unbooked process.",
    )
    unix_username = models.CharField(max_length=32, blank=True, verbose_name="unix user name")
    message = models.TextField()
    action = models.CharField(max_length=200, blank=True, help_text="What labres did about it, e.g. released the booking.")
    opened_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(fields=["key"], condition=Q(resolved_at__isnull=True), name="alert_one_open_per_key"),
        ]
        indexes = [models.Index(fields=["kind", "opened_at"], name="alert_kind_opened")]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.message}"

    @property
    def is_open(self):
        return self.resolved_at is None
