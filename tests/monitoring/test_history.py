"""gpu_history: the resolution that suits the period, and points from it."""
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.history import gpu_history, resolution_for
from monitoring.models import GpuHour, GpuMinute
from tests.factories import ServerFactory

from .telemetry import utilization_series

pytestmark = pytest.mark.django_db


@pytest.fixture
def gpu(db):
    return ServerFactory(name="eurostar", gpus=1).devices.get()


@pytest.mark.parametrize(
    "length, age, expected",
    [
        (timedelta(hours=1), timedelta(0), "raw"),
        (timedelta(hours=3), timedelta(0), "raw"),
        (timedelta(hours=1), timedelta(days=3), "minute"),  # raw samples of then are pruned
        (timedelta(days=1), timedelta(0), "minute"),
        (timedelta(days=7), timedelta(0), "hour"),
        (timedelta(hours=1), timedelta(days=20), "hour"),  # minutes of then are pruned too
    ],
)
def test_resolution_suits_the_length_and_what_is_still_kept(length, age, expected):
    now = timezone.now()
    end = now - age
    assert resolution_for(end - length, end, now) == expected


def test_raw_history_has_one_point_per_readable_sample_in_order(gpu):
    now = timezone.now().replace(microsecond=0)
    utilization_series(gpu, now - timedelta(minutes=2), now, 42)

    resolution, points = gpu_history(gpu.pk, now - timedelta(hours=1), now + timedelta(seconds=1))

    assert resolution == "raw"
    assert len(points) == 8 and [p.at for p in points] == sorted(p.at for p in points)
    assert points[0].as_dict()["gpu_util"] == 42 and points[0].as_dict()["at"].endswith("Z")


def test_rollup_history_gives_averages_and_peaks_and_skips_empty_buckets(gpu):
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    GpuHour.objects.bulk_create([
        GpuHour(device=gpu, bucket=now - timedelta(hours=2), samples=240, gpu_util_sum=240 * 30, gpu_util_max=90,
                mem_util_sum=240 * 10, memory_used_sum=240 * 2000, memory_used_max=4000, temperature_max=70,
                power_samples=120, power_sum=120 * 250.0),
        GpuHour(device=gpu, bucket=now - timedelta(hours=1), samples=0, errors=240),
    ])
    GpuMinute.objects.create(device=gpu, bucket=now - timedelta(hours=2), samples=4, gpu_util_sum=4)

    resolution, points = gpu_history(gpu.pk, now - timedelta(days=7), now)

    assert resolution == "hour"
    (point,) = points
    assert point.as_dict() == {
        "at": (now - timedelta(hours=2)).isoformat().replace("+00:00", "Z"), "gpu_util": 30.0, "gpu_util_max": 90,
        "mem_util": 10.0, "memory_used_mib": 2000.0, "memory_peak_mib": 4000, "temperature_c": 70, "power_w": 250.0,
        "samples": 240,
    }
