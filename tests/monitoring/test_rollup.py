"""Rollups: raw samples into minutes, minutes into hours; idempotent; pruning by age."""
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from monitoring.models import GpuHour, GpuMinute, GpuSample
from monitoring.rollup import prune, rollup_hours, rollup_minutes, rollup_recent
from tests.factories import ServerFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
FIELDS = ("samples", "errors", "gpu_util_sum", "gpu_util_max", "active_samples", "mem_util_sum", "memory_used_sum",
          "memory_used_max", "temperature_max", "power_samples", "power_max")


@pytest.fixture
def gpu(db):
    return ServerFactory(name="thalys", gpus=2).devices.get(index=0)


def sample(device, at, util=50, *, memory=1000, temperature=60, power=200.0, error=""):
    if error:
        return GpuSample(device=device, taken_at=at, error=error)
    return GpuSample(
        device=device, taken_at=at, gpu_util=util, mem_util=util // 2, memory_used_mib=memory,
        temperature_c=temperature, power_w=power, power_limit_w=400.0,
    )


def test_a_minute_holds_sums_and_peaks_of_its_samples(gpu):
    GpuSample.objects.bulk_create([
        sample(gpu, T0, 10, memory=1000, temperature=50, power=100.0),
        sample(gpu, T0 + timedelta(seconds=15), 90, memory=3000, temperature=70, power=300.0),
        sample(gpu, T0 + timedelta(seconds=30), error="GPU is lost"),
        sample(gpu, T0 + timedelta(seconds=60), 40),  # the next minute
    ])

    assert rollup_minutes(T0, T0 + timedelta(minutes=2)) == 2

    minute = GpuMinute.objects.get(device=gpu, bucket=T0)
    assert (minute.samples, minute.errors) == (2, 1)
    assert (minute.gpu_util_sum, minute.gpu_util_max, minute.gpu_util_avg) == (100, 90, 50)
    assert minute.active_samples == 2
    assert (minute.memory_used_max, minute.memory_used_avg) == (3000, 2000)
    assert minute.temperature_max == 70
    assert (minute.power_samples, minute.power_avg, minute.power_max) == (2, 200.0, 300.0)
    assert GpuMinute.objects.get(device=gpu, bucket=T0 + timedelta(minutes=1)).gpu_util_sum == 40


def test_samples_under_the_active_threshold_are_not_active(gpu, settings):
    settings.GPU_ACTIVE_PERCENT = 5
    GpuSample.objects.bulk_create([sample(gpu, T0, 4), sample(gpu, T0 + timedelta(seconds=15), 5)])

    rollup_minutes(T0, T0 + timedelta(minutes=1))

    assert GpuMinute.objects.get(device=gpu).active_samples == 1


def test_rolling_up_twice_changes_nothing(gpu):
    GpuSample.objects.bulk_create([sample(gpu, T0 + timedelta(seconds=15 * i), 10 * i) for i in range(8)])
    rollup_minutes(T0, T0 + timedelta(minutes=2))
    rollup_hours(T0, T0 + timedelta(hours=1))
    first = list(GpuHour.objects.values(*FIELDS)), list(GpuMinute.objects.values(*FIELDS))

    rollup_minutes(T0, T0 + timedelta(minutes=2))
    rollup_hours(T0, T0 + timedelta(hours=1))

    assert (list(GpuHour.objects.values(*FIELDS)), list(GpuMinute.objects.values(*FIELDS))) == first
    assert GpuMinute.objects.count() == 2 and GpuHour.objects.count() == 1


def test_a_late_sample_is_counted_when_its_minute_is_recomputed(gpu):
    GpuSample.objects.bulk_create([sample(gpu, T0, 20)])
    rollup_minutes(T0, T0 + timedelta(minutes=1))
    GpuSample.objects.bulk_create([sample(gpu, T0 + timedelta(seconds=45), 60)])

    rollup_minutes(T0, T0 + timedelta(minutes=1))

    minute = GpuMinute.objects.get(device=gpu, bucket=T0)
    assert (minute.samples, minute.gpu_util_sum) == (2, 80)


def test_rollup_recent_covers_the_current_minute_and_hour(gpu):
    now = T0 + timedelta(minutes=30, seconds=20)
    GpuSample.objects.bulk_create([sample(gpu, now - timedelta(seconds=5), 70), sample(gpu, now - timedelta(minutes=3), 30)])

    assert rollup_recent(now) == {"minutes": 2, "hours": 1}

    assert GpuHour.objects.get(device=gpu, bucket=T0).gpu_util_sum == 100


samples_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3 * 3600 - 1),  # second within three hours
        st.one_of(st.none(), st.integers(min_value=0, max_value=100)),  # None: an error sample
        st.integers(min_value=0, max_value=81920),
        st.one_of(st.none(), st.floats(min_value=30, max_value=700, allow_nan=False).map(lambda w: round(w, 1))),
        st.sampled_from([0, 1]),  # which GPU
    ),
    max_size=60,
)


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=samples_strategy)
def test_hours_from_minutes_equal_hours_from_raw_samples(rows, gpu):
    devices = list(gpu.server.devices.order_by("index"))
    GpuSample.objects.all().delete()
    GpuMinute.objects.all().delete()
    GpuSample.objects.bulk_create([
        GpuSample(
            device=devices[which], taken_at=T0 + timedelta(seconds=second), gpu_util=util, mem_util=util,
            memory_used_mib=None if util is None else memory, temperature_c=None if util is None else 40 + util // 3,
            power_w=None if util is None else power, error="GPU is lost" if util is None else "",
        )
        for second, util, memory, power, which in rows
    ])
    span = (T0, T0 + timedelta(hours=3))

    GpuHour.objects.all().delete()
    rollup_hours(*span, from_raw=True)
    direct = {(h.device_id, h.bucket): h for h in GpuHour.objects.all()}
    GpuHour.objects.all().delete()
    rollup_minutes(*span)
    rollup_hours(*span)
    stepped = {(h.device_id, h.bucket): h for h in GpuHour.objects.all()}

    assert direct.keys() == stepped.keys()
    for key, hour in direct.items():
        assert {f: getattr(hour, f) for f in FIELDS} == {f: getattr(stepped[key], f) for f in FIELDS}
        assert hour.power_sum == pytest.approx(stepped[key].power_sum)


def test_prune_deletes_each_resolution_past_its_retention(gpu, settings):
    settings.TELEMETRY_RAW_RETENTION = "48h"
    settings.TELEMETRY_MINUTE_RETENTION = "14d"
    settings.TELEMETRY_HOUR_RETENTION = "365d"
    now = T0
    GpuSample.objects.bulk_create([sample(gpu, now - timedelta(hours=49)), sample(gpu, now - timedelta(hours=47))])
    GpuMinute.objects.bulk_create([
        GpuMinute(device=gpu, bucket=now - timedelta(days=15)), GpuMinute(device=gpu, bucket=now - timedelta(minutes=1)),
    ])
    GpuHour.objects.bulk_create([GpuHour(device=gpu, bucket=now - timedelta(days=366)), GpuHour(device=gpu, bucket=now - timedelta(days=364))])

    assert prune(now) == {"raw": 1, "minute": 1, "hour": 1}

    assert list(GpuSample.objects.values_list("taken_at", flat=True)) == [now - timedelta(hours=47)]
    assert GpuMinute.objects.count() == 1 and GpuHour.objects.count() == 1
    assert prune(now) == {"raw": 0, "minute": 0, "hour": 0}  # a second run finds nothing


def test_prune_keeps_raw_samples_that_are_not_rolled_up_yet(gpu):
    old = T0 - timedelta(days=5)
    GpuSample.objects.bulk_create([sample(gpu, old)])

    assert prune(T0)["raw"] == 0  # no minute rollup at all: the rollup task is behind, keep the samples

    GpuMinute.objects.create(device=gpu, bucket=old + timedelta(minutes=1))
    assert prune(T0)["raw"] == 1
