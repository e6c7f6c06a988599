"""A booking's actual use: mean and peak utilization and peak memory of its GPUs while it ran.

usage_of computes it from the finest telemetry still kept for the booking's time (raw
samples, else per-minute, else hourly rollups); settle_ended stores it once for each
booking that ended, so it stays after the raw samples are pruned.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, Count, IntegerField, Max, Sum, Value, When
from django.utils import timezone

from reservations.models import Allocation, Booking

from .models import BookingUsage, GpuHour, GpuMinute, GpuSample
from .rollup import HOUR, MINUTE, floor_to, retention


@dataclass(frozen=True)
class Usage:
    samples: int
    gpu_util_mean: float | None
    gpu_util_peak: int | None
    memory_peak_mib: int | None
    booked_gpu_hours: float
    used_gpu_hours: float
    source: str

    @property
    def used_share(self) -> float | None:
        """Used GPU-hours over booked ones, 0..1 (None when nothing was booked)."""
        return self.used_gpu_hours / self.booked_gpu_hours if self.booked_gpu_hours else None


def gpu_devices_of(booking: Booking) -> list[int]:
    """Ids of the GPUs a booking holds (all of a whole server's)."""
    return list(
        Allocation.objects.filter(booking=booking, unit__device__isnull=False).values_list("unit__device_id", flat=True)
    )


def usage_of(booking: Booking, now: datetime | None = None) -> Usage | None:
    """The booking's use from its start until its end (or now, while it runs); None for a booking of no GPUs."""
    now = now or timezone.now()
    devices = gpu_devices_of(booking)
    if not devices:
        return None
    start, end = booking.start, min(booking.end, now)
    if end <= start:
        return Usage(0, None, None, None, 0.0, 0.0, "raw")
    keep = retention()
    if start >= now - keep["raw"]:
        source = "raw"
        rows = GpuSample.objects.filter(device_id__in=devices, taken_at__gte=start, taken_at__lt=end, error="")
        active = Case(When(gpu_util__gte=settings.GPU_ACTIVE_PERCENT, then=Value(1)), default=Value(0), output_field=IntegerField())
        totals = rows.aggregate(
            samples=Count("id"), util_sum=Sum("gpu_util"), peak=Max("gpu_util"), memory=Max("memory_used_mib"), active=Sum(active)
        )
    else:
        source, model = ("minute", GpuMinute) if start >= now - keep["minute"] else ("hour", GpuHour)
        buckets = model.objects.filter(
            device_id__in=devices, bucket__gte=floor_to(start, MINUTE if model is GpuMinute else HOUR), bucket__lt=end
        )
        totals = buckets.aggregate(
            samples=Sum("samples"), util_sum=Sum("gpu_util_sum"), peak=Max("gpu_util_max"),
            memory=Max("memory_used_max"), active=Sum("active_samples"),
        )
    samples = totals["samples"] or 0
    booked = len(devices) * (end - start).total_seconds() / 3600
    used = booked * (totals["active"] or 0) / samples if samples else 0.0
    return Usage(
        samples=samples,
        gpu_util_mean=totals["util_sum"] / samples if samples else None,
        gpu_util_peak=totals["peak"],
        memory_peak_mib=totals["memory"],
        booked_gpu_hours=round(booked, 4),
        used_gpu_hours=round(used, 4),
        source=source,
    )


def settle_ended(now: datetime | None = None, *, limit: int = 500) -> int:
    """Store the usage of GPU bookings that ended (or were released) and have none yet; returns how many.

    Only bookings on monitored servers, ended at least one sampling interval ago (the last
    reading is in) and no longer ago than the raw retention (older ones were before telemetry).
    """
    now = now or timezone.now()
    settled_before = now - timedelta(seconds=settings.TELEMETRY_INTERVAL_SECONDS)
    candidates = (
        Booking.objects.holding().filter(
            server__isnull=False, server__monitored=True, end__lte=settled_before, end__gt=now - retention()["raw"], usage__isnull=True,
        )
        .order_by("end")[:limit]
    )
    settled = 0
    for booking in candidates:
        usage = usage_of(booking, now)
        if usage is None:
            continue
        try:
            with transaction.atomic():
                BookingUsage.objects.create(
                    booking=booking, samples=usage.samples, gpu_util_mean=usage.gpu_util_mean,
                    gpu_util_peak=usage.gpu_util_peak, memory_peak_mib=usage.memory_peak_mib,
                    booked_gpu_hours=usage.booked_gpu_hours, used_gpu_hours=usage.used_gpu_hours,
                    source=usage.source, settled_at=now,
                )
        except IntegrityError:
            continue  # settled by a concurrent run
        settled += 1
    return settled


def stored_or_live_usage(booking: Booking, now: datetime | None = None) -> Usage | None:
    """What the booking page shows: the settled usage if there is one, else computed now."""
    try:
        stored = booking.usage
    except BookingUsage.DoesNotExist:
        return usage_of(booking, now)
    return Usage(
        stored.samples, stored.gpu_util_mean, stored.gpu_util_peak, stored.memory_peak_mib,
        stored.booked_gpu_hours, stored.used_gpu_hours, stored.source,
    )
