"""Rollups of raw GPU samples into minutes and minutes into hours, and pruning by age.

A bucket is always recomputed whole from its source and written with one upsert, so
running a rollup twice, or over a window that overlaps the last run, changes nothing.
Sums and maxima (see Rollup) make a rollup of rollups equal the rollup of the raw samples.
"""
from datetime import UTC, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, Count, IntegerField, Max, Q, Sum, Value, When
from django.db.models.functions import Coalesce, TruncHour, TruncMinute
from django.utils import timezone

from reservations.parsing import parse_duration

from .models import GpuHour, GpuMinute, GpuSample, Rollup

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
BATCH = 2000

# How far back each periodic run recomputes. Sampling messages expire after one interval, so a
# sample is never much later than its minute; the lookback also covers a missed run or two.
MINUTE_LOOKBACK = timedelta(minutes=3)
HOUR_LOOKBACK = timedelta(hours=1)


def floor_to(moment, step):
    """The start of the minute or hour `moment` lies in, UTC."""
    moment = moment.astimezone(UTC)
    if step == MINUTE:
        return moment.replace(second=0, microsecond=0)
    if step == HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    raise ValueError("step must be MINUTE or HOUR")


def _raw_aggregates(trunc):
    readable = Q(error="")
    active = Case(When(gpu_util__gte=settings.GPU_ACTIVE_PERCENT, then=Value(1)), default=Value(0), output_field=IntegerField())
    return {
        "bucket_": trunc("taken_at", tzinfo=UTC),
        "values": {
            "samples": Count("id", filter=readable),
            "errors": Count("id", filter=~readable),
            "gpu_util_sum": Coalesce(Sum("gpu_util", filter=readable), 0),
            "gpu_util_max": Max("gpu_util"),
            "active_samples": Coalesce(Sum(active, filter=readable), 0),
            "mem_util_sum": Coalesce(Sum("mem_util", filter=readable), 0),
            "memory_used_sum": Coalesce(Sum("memory_used_mib", filter=readable), 0),
            "memory_used_max": Max("memory_used_mib"),
            "temperature_max": Max("temperature_c"),
            "power_samples": Count("power_w"),
            "power_sum": Coalesce(Sum("power_w"), 0.0),
            "power_max": Max("power_w"),
        },
    }


def _rollup_aggregates(trunc):
    values = {name: Coalesce(Sum(name), 0) for name in Rollup.SUMS if name != "power_sum"}
    values["power_sum"] = Coalesce(Sum("power_sum"), 0.0)
    values.update({name: Max(name) for name in Rollup.MAXES})
    return {"bucket_": trunc("bucket", tzinfo=UTC), "values": values}


def _rows(queryset, aggregates):
    grouped = (
        queryset.annotate(bucket_=aggregates["bucket_"])
        .values("device_id", "bucket_")
        .annotate(**aggregates["values"])
        .order_by()
    )
    for row in grouped.iterator(chunk_size=BATCH):
        row["bucket"] = row.pop("bucket_")
        yield row


def _upsert(model, rows):
    fields = list(Rollup.SUMS + Rollup.MAXES)
    written = 0
    batch = []
    for row in rows:
        batch.append(model(**row))
        if len(batch) >= BATCH:
            written += _write(model, batch, fields)
            batch = []
    if batch:
        written += _write(model, batch, fields)
    return written


def _write(model, batch, fields):
    model.objects.bulk_create(batch, update_conflicts=True, unique_fields=["device", "bucket"], update_fields=fields)
    return len(batch)


def rollup_minutes(start, end):
    """(Re)compute every minute bucket from `start` (floored) up to `end` from raw samples; returns buckets written."""
    start = floor_to(start, MINUTE)
    source = GpuSample.objects.filter(taken_at__gte=start, taken_at__lt=end)
    with transaction.atomic():
        return _upsert(GpuMinute, _rows(source, _raw_aggregates(TruncMinute)))


def rollup_hours(start, end, *, from_raw=False):
    """(Re)compute every hour bucket from `start` (floored) up to `end`, from the minute rollups
    (or straight from raw samples with from_raw, to check the two agree); returns buckets written."""
    start = floor_to(start, HOUR)
    if from_raw:
        source, aggregates = GpuSample.objects.filter(taken_at__gte=start, taken_at__lt=end), _raw_aggregates(TruncHour)
    else:
        source, aggregates = GpuMinute.objects.filter(bucket__gte=start, bucket__lt=end), _rollup_aggregates(TruncHour)
    with transaction.atomic():
        return _upsert(GpuHour, _rows(source, aggregates))


def rollup_recent(now=None):
    """The periodic run: minutes over the last MINUTE_LOOKBACK, hours over the last HOUR_LOOKBACK,
    current (partial) buckets included so history reaches the present."""
    now = now or timezone.now()
    minutes = rollup_minutes(now - MINUTE_LOOKBACK, now + MINUTE)
    hours = rollup_hours(now - HOUR_LOOKBACK, now + HOUR)
    return {"minutes": minutes, "hours": hours}


def retention():
    """How long each resolution is kept, from the settings."""
    return {
        "raw": parse_duration(settings.TELEMETRY_RAW_RETENTION),
        "minute": parse_duration(settings.TELEMETRY_MINUTE_RETENTION),
        "hour": parse_duration(settings.TELEMETRY_HOUR_RETENTION),
    }


def prune(now=None):
    """Delete what is older than its retention; returns the rows deleted per resolution.

    Raw samples are only pruned once they are rolled up: the cut never goes past the
    newest minute bucket.
    """
    now = now or timezone.now()
    keep = retention()
    deleted = {}
    raw_cut = now - keep["raw"]
    newest_minute = GpuMinute.objects.aggregate(newest=Max("bucket"))["newest"]
    raw_cut = min(raw_cut, newest_minute) if newest_minute else None
    deleted["raw"] = _delete_before(GpuSample, "taken_at", raw_cut) if raw_cut else 0
    deleted["minute"] = _delete_before(GpuMinute, "bucket", now - keep["minute"])
    deleted["hour"] = _delete_before(GpuHour, "bucket", now - keep["hour"])
    return deleted


def _delete_before(model, field, cut):
    """Delete in batches of primary keys, so a big first prune does not hold one huge transaction."""
    total = 0
    while True:
        ids = list(model.objects.filter(**{f"{field}__lt": cut}).order_by().values_list("pk", flat=True)[:10_000])
        if not ids:
            return total
        total += model.objects.filter(pk__in=ids).delete()[0]

