"""The monitoring queries that skip part of the ORM for speed, each beside its twin in the ORM.

Kept only where a measurement showed the ORM version measurably slower (the usage report of
bench/telemetry.py's lab; the demo's backfill); tests/monitoring/test_queries.py checks that each
gives what its `_orm` twin gives.
"""
from django.db import connection, connections


def plain_rows(queryset):
    """The rows of a values_list() query as the database driver gives them (a list of tuples).

    Skips Django's conversion of each value, which on tens of thousands of rows costs more than
    the query; only for numbers and text, which both drivers already return as Python values.
    """
    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def plain_rows_orm(queryset):
    """plain_rows in the ORM."""
    return [tuple(row) for row in queryset]


BATCH = 5000  # rows per executemany on SQLite


def insert_plain(model, fields, rows):
    """Insert `rows`, plain tuples of values for `fields` (names) of `model`, ready for the database as they are.

    COPY on PostgreSQL and executemany on SQLite: bulk_create spends seconds preparing 50,000
    rows value by value, and `seed_demo` should stay quick. No signals, no defaults.
    """
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(model._meta.get_field(name).column) for name in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        placeholders = ", ".join(["%s"] * len(fields))
        for offset in range(0, len(rows), BATCH):
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", rows[offset : offset + BATCH])


def insert_plain_orm(model, fields, rows):
    """insert_plain in the ORM."""
    names = [model._meta.get_field(name).attname for name in fields]
    model.objects.bulk_create((model(**dict(zip(names, row))) for row in rows), batch_size=BATCH)
