"""monitoring.queries: each query that skips part of the ORM gives what its ORM twin gives."""
from datetime import timedelta

import pytest
from django.db.models import Count, FloatField, Sum
from django.db.models.functions import Cast

from monitoring import queries
from reservations.models import Server
from tests.factories import ServerFactory

pytestmark = pytest.mark.django_db


def test_plain_rows_equal_their_orm_twin_for_numbers_and_text():
    ServerFactory(name="thalys", gpus=3)
    ServerFactory(name="orion", gpus=0)
    rows = (
        Server.objects.values_list("name")
        .annotate(gpus=Count("devices"), indices=Sum(Cast("devices__index", FloatField())))
        .order_by("name")
    )
    plain = queries.plain_rows(rows)
    assert plain == queries.plain_rows_orm(rows)
    assert plain == [("orion", 0, None), ("thalys", 3, 3.0)]


def rollup_rows(device, hours, clock):
    """Plain rows as the demo's backfill makes them: values ready for the database."""
    from django.db import connection

    from monitoring.demo_history import COLUMNS

    base = clock.replace(minute=0, second=0, microsecond=0)
    values = [index for index, _ in enumerate(COLUMNS[2:])]
    return [(device.pk, connection.ops.adapt_datetimefield_value(base + timedelta(hours=hour)), *values) for hour in hours]


def test_insert_plain_writes_what_its_orm_twin_writes(clock):
    from monitoring.demo_history import COLUMNS
    from monitoring.models import GpuHour

    device = ServerFactory(name="thalys", gpus=2).devices.get(index=0)
    other = device.server.devices.get(index=1)
    queries.insert_plain(GpuHour, COLUMNS, rollup_rows(device, range(3), clock))
    queries.insert_plain_orm(GpuHour, COLUMNS, rollup_rows(other, range(3), clock))

    def stored(gpu):
        return list(GpuHour.objects.filter(device=gpu).order_by("bucket").values_list(*[f for f in COLUMNS if f != "device"]))

    assert len(stored(device)) == 3
    assert stored(device) == stored(other)
