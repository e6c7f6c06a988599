"""monitoring.queries: each query that skips part of the ORM gives what its ORM twin gives."""
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
