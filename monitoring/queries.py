"""The monitoring queries that skip part of the ORM for speed, each beside its twin in the ORM.

Kept only where a measurement showed the ORM version measurably slower (the usage report of
bench/telemetry.py's lab; the demo's backfill); tests/monitoring/test_queries.py checks that each
gives what its `_orm` twin gives.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, connections
from django.db.models import DateTimeField, Model, QuerySet

from labres.db import aware_datetime


def plain_rows(queryset: QuerySet[Any, tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows of a values_list() query as the database driver gives them (a list of tuples).

    Skips Django's conversion of each value, which on tens of thousands of rows costs more than
    the query; only for numbers and text, which both drivers already return as Python values.
    """
    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()  # type: ignore[no-any-return]  # the driver's rows: tuples


def plain_rows_orm(queryset: QuerySet[Any, tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """plain_rows in the ORM."""
    return [tuple(row) for row in queryset]


BATCH = 5000  # rows per executemany on SQLite


def insert_plain(model: type[Model], fields: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert `rows`, plain tuples of values for `fields` (names) of `model`, ready for the database as they are.

    COPY on PostgreSQL and executemany on SQLite: bulk_create spends seconds preparing 50,000
    rows value by value, and `seed_demo` should stay quick. No signals, no defaults.
    """
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    # `fields` name concrete fields (with a column), not reverse relations.
    columns = ", ".join(quote(model._meta.get_field(name).column) for name in fields)  # type: ignore[union-attr, arg-type]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        placeholders = ", ".join(["%s"] * len(fields))
        for offset in range(0, len(rows), BATCH):
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", rows[offset : offset + BATCH])


def insert_plain_orm(model: type[Model], fields: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """insert_plain in the ORM."""
    concrete = [model._meta.get_field(name) for name in fields]
    names = [field.attname for field in concrete]  # type: ignore[union-attr]  # concrete fields
    # Plain rows hold database values: on SQLite a time is naive UTC text, which the ORM reads as aware.
    times = [isinstance(field, DateTimeField) for field in concrete]

    def instance(row: tuple[Any, ...]) -> Model:
        return model(**{name: aware_datetime(value) if time else value for name, time, value in zip(names, times, row)})

    # type[Model] declares no `objects`; the models given (the rollups) have it.
    model.objects.bulk_create((instance(row) for row in rows), batch_size=BATCH)  # type: ignore[attr-defined]
