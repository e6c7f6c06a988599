"""The monitoring queries that skip part of the ORM for speed, each beside its twin in the ORM.

Kept only where a benchmark showed the ORM version measurably slower (bench/telemetry.py's
usage page); tests/monitoring/test_queries.py checks that each gives what its `_orm` twin gives.
"""
from django.db import connections


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
