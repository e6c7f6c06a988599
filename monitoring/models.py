"""What the GPU hosts report: each host's last word (HostStatus) and raw per-GPU samples (GpuSample).

Samples are raw and kept briefly; rollups for long history come later.
"""
from django.db import models


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
    error = models.TextField(blank=True, help_text="NVML's message when this GPU could not be read.")

    class Meta:
        ordering = ["-taken_at"]
        indexes = [
            models.Index(fields=["device", "taken_at"], name="gpusample_device_taken_at"),
            models.Index(fields=["taken_at"], name="gpusample_taken_at"),
        ]

    def __str__(self):
        return f"{self.device} at {self.taken_at:%Y-%m-%d %H:%M:%S}"
