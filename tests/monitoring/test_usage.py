"""A booking's actual use: computed from telemetry, settled once when it ends."""
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.models import BookingUsage, GpuMinute
from monitoring.usage import settle_ended, stored_or_live_usage, usage_of
from reservations import services
from tests.factories import ServerFactory

from .telemetry import running_booking, utilization_series

pytestmark = pytest.mark.django_db


@pytest.fixture
def eurostar(db):
    return ServerFactory(name="eurostar", gpus=4)


def device(server, index):
    return server.devices.get(index=index)


def test_usage_of_a_running_booking_covers_its_gpus_from_start_to_now(alice, eurostar, settings):
    settings.GPU_ACTIVE_PERCENT = 5
    booking = running_booking(alice, eurostar, "0-1", started_ago=timedelta(hours=1))
    now = booking.start + timedelta(hours=1)
    utilization_series(device(eurostar, 0), booking.start, now, 80)
    utilization_series(device(eurostar, 1), booking.start, booking.start + timedelta(minutes=30), 0)
    utilization_series(device(eurostar, 1), booking.start + timedelta(minutes=30), now, 40)
    utilization_series(device(eurostar, 2), booking.start, now, 100)  # not booked: not counted

    usage = usage_of(booking, now)

    assert usage.samples == 240 * 2
    assert usage.gpu_util_mean == pytest.approx((240 * 80 + 120 * 40) / 480)
    assert (usage.gpu_util_peak, usage.memory_peak_mib) == (80, 1080)
    assert usage.booked_gpu_hours == pytest.approx(2.0)
    assert usage.used_gpu_hours == pytest.approx(1.5)  # GPU 0 all hour, GPU 1 half of it
    assert usage.used_share == pytest.approx(0.75)
    assert usage.source == "raw"


def test_a_booking_of_no_gpus_has_no_usage(alice, room):
    start = timezone.now() + timedelta(hours=1)
    booking = services.create_booking(alice, start=start, end=start + timedelta(hours=1), room=room.name)

    assert usage_of(booking) is None


def test_usage_from_before_the_raw_retention_comes_from_minute_rollups(alice, eurostar, settings):
    settings.TELEMETRY_RAW_RETENTION = "48h"
    booking = running_booking(alice, eurostar, "3", started_ago=timedelta(days=3), hours=1)
    gpu = device(eurostar, 3)
    GpuMinute.objects.bulk_create([
        GpuMinute(device=gpu, bucket=booking.start.replace(second=0, microsecond=0) + timedelta(minutes=m),
                  samples=4, gpu_util_sum=4 * (10 + m), gpu_util_max=10 + m, active_samples=4, memory_used_max=500 + m)
        for m in range(60)
    ])

    usage = usage_of(booking)

    assert usage.source == "minute"
    assert usage.samples == 240
    assert usage.gpu_util_peak == 69 and usage.memory_peak_mib == 559
    assert usage.gpu_util_mean == pytest.approx(sum(10 + m for m in range(60)) / 60)
    assert usage.used_gpu_hours == pytest.approx(1.0)


def test_settle_stores_the_usage_of_ended_and_released_bookings_once(alice, bob, eurostar):
    ended = running_booking(alice, eurostar, "0", started_ago=timedelta(hours=3), hours=1)
    released = running_booking(bob, eurostar, "1", started_ago=timedelta(minutes=40))
    utilization_series(device(eurostar, 0), ended.start, ended.end, 30)
    utilization_series(device(eurostar, 1), released.start, timezone.now(), 2)
    release_time = timezone.now() - timedelta(minutes=5)
    services.release_booking(released, by=bob, now=release_time)
    still_running = running_booking(alice, eurostar, "2", started_ago=timedelta(minutes=10))

    assert settle_ended() == 2
    assert settle_ended() == 0

    first, second = BookingUsage.objects.get(booking=ended), BookingUsage.objects.get(booking=released)
    assert (first.gpu_util_mean, first.samples) == (30, 240)
    assert second.booked_gpu_hours == pytest.approx(35 / 60, abs=0.01)  # until the release, not the booked end
    assert second.gpu_util_peak == 2 and second.used_gpu_hours == 0
    assert not BookingUsage.objects.filter(booking=still_running).exists()
    assert stored_or_live_usage(ended).gpu_util_mean == 30


def test_bookings_on_unmonitored_servers_are_not_settled(alice):
    ice = ServerFactory(name="ice", gpus=2, monitored=False)
    running_booking(alice, ice, "0", started_ago=timedelta(hours=2), hours=1)

    assert settle_ended() == 0
