"""A GPU's history over a period, from the resolution that suits its length.

Up to RAW_UP_TO: raw samples; up to MINUTE_UP_TO: per-minute rollups; longer: hourly ones.
A chart then draws at most a few thousand points whatever the period.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from .models import GpuHour, GpuMinute, GpuSample
from .rollup import retention

RAW_UP_TO = timedelta(hours=3)
MINUTE_UP_TO = timedelta(days=2)

# Named periods for pages and the API: last hour / day / week / month.
PERIODS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=30)}


@dataclass(frozen=True)
class Point:
    """One point of a GPU's history: a sample, or a bucket's averages and peaks."""

    at: datetime
    gpu_util: float | None
    gpu_util_max: int | None
    mem_util: float | None
    memory_used_mib: float | None
    memory_peak_mib: int | None
    temperature_c: int | None  # the bucket's maximum
    power_w: float | None
    samples: int

    def as_dict(self) -> dict[str, str | float | None]:
        return {
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "gpu_util": _round(self.gpu_util),
            "gpu_util_max": self.gpu_util_max,
            "mem_util": _round(self.mem_util),
            "memory_used_mib": _round(self.memory_used_mib),
            "memory_peak_mib": self.memory_peak_mib,
            "temperature_c": self.temperature_c,
            "power_w": _round(self.power_w),
            "samples": self.samples,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def resolution_for(start: datetime, end: datetime, now: datetime | None = None) -> str:
    """'raw', 'minute' or 'hour': the finest resolution that is short enough to draw and still kept for `start`."""
    now = now or timezone.now()
    keep = retention()
    length = end - start
    if length <= RAW_UP_TO and start >= now - keep["raw"]:
        return "raw"
    if length <= MINUTE_UP_TO and start >= now - keep["minute"]:
        return "minute"
    return "hour"


def gpu_history(
    device_id: int, start: datetime, end: datetime, *, resolution: str | None = None, now: datetime | None = None
) -> tuple[str, list[Point]]:
    """(resolution, [Point]) for one GPU over [start, end)."""
    resolution = resolution or resolution_for(start, end, now)
    if resolution == "raw":
        rows = (
            GpuSample.objects.filter(device_id=device_id, taken_at__gte=start, taken_at__lt=end, error="")
            .order_by("taken_at")
            .values_list("taken_at", "gpu_util", "mem_util", "memory_used_mib", "temperature_c", "power_w")
        )
        return resolution, [Point(at, util, util, mem, used, used, temp, power, 1) for at, util, mem, used, temp, power in rows]
    model = GpuMinute if resolution == "minute" else GpuHour
    buckets = (
        model.objects.filter(device_id=device_id, bucket__gte=start, bucket__lt=end, samples__gt=0)
        .order_by("bucket")
        .values_list(
            "bucket", "samples", "gpu_util_sum", "gpu_util_max", "mem_util_sum", "memory_used_sum", "memory_used_max",
            "temperature_max", "power_samples", "power_sum",
        )
    )
    points = [
        Point(
            at, util_sum / n, util_max, mem_sum / n, used_sum / n, used_max, temp, (power_sum / power_n) if power_n else None, n
        )
        for at, n, util_sum, util_max, mem_sum, used_sum, used_max, temp, power_n, power_sum in buckets
    ]
    return resolution, points
