"""Prepared statements for the few statements every booking runs.

Django sends each statement as text with its parameters merged in, and PostgreSQL parses and
plans it anew every time; for the short statements of a booking's transaction that costs more
than running them. prepared_cursor() gives a cursor that binds parameters on the server and
prepares each statement once per connection (PostgreSQL then only executes it), wrapped like
any Django cursor, so errors arrive as django.db errors. Elsewhere (SQLite), and while Django
logs queries, it is Django's own cursor.

Prepared statements live in a database session, so a pooler that hands one session to many
clients (PgBouncer in transaction mode before 1.21, or without max_prepared_statements) breaks
them: DATABASE_PREPARED_STATEMENTS=0 turns them off (see the README).
"""
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg
from django.conf import settings
from django.db import transaction
from django.db.backends.postgresql.psycopg_any import register_tzloader
from django.utils.dateparse import parse_datetime
from psycopg.postgres import types
from psycopg.pq import Format


@contextmanager
def prepared_cursor(connection=None):
    """A cursor for statements run on every booking (see the module docstring); use as a context manager."""
    connection = connection or transaction.get_connection()
    if connection.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS or connection.queries_logged:
        # While Django logs queries (DEBUG, or a test counting them), its own cursor, whose
        # statements it can write out with their parameters.
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        raw = _preparing_cursor(connection)
    with connection.make_cursor(raw) as cursor:
        yield cursor


def aware_datetime(value):
    """A timestamp read by plain SQL, as the ORM would give it: an aware datetime in UTC, or None.

    PostgreSQL's driver already gives aware datetimes. SQLite stores naive UTC text: its driver
    gives naive datetimes for a column, and text for an expression such as MAX().
    """
    if isinstance(value, str):
        value = parse_datetime(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


class PreparingCursor(psycopg.Cursor):
    """Binds parameters on the server and prepares every statement on its first use in a session."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True if prepare is None else prepare, binary=binary)


TIMESTAMPTZ_OID = types["timestamptz"].oid


def _preparing_cursor(connection):
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django turns automatic preparing off (prepare_threshold None), which also refuses an
        # explicit prepare=True. A threshold no statement reaches turns it back on for explicit
        # requests only: Django's own cursors bind on the client and never prepare.
        raw.prepare_threshold = 2**31 - 1
    cursor = PreparingCursor(raw)
    # As Django's create_cursor: the cursor reads timestamps in the connection's time zone.
    if connection.timezone != raw.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT).timezone:
        register_tzloader(connection.timezone, cursor)
    return cursor


def insert(objs, *, ignore_conflicts=False):
    """INSERT model instances of one model in one prepared statement, as bulk_create would write them.

    Defaults, auto_now(_add) and each field's preparation for the database are Django's own
    (field.pre_save, get_db_prep_save); the primary keys are read back and set unless conflicts
    are ignored (a skipped row returns none). Sends no signals, like bulk_create. For the few rows
    every booking writes, where building the statement with the ORM cost more than running it.
    """
    if not objs:
        return objs
    model = type(objs[0])
    connection = transaction.get_connection()
    meta = model._meta
    fields = [field for field in meta.local_concrete_fields if field is not meta.auto_field]
    returning = not ignore_conflicts and connection.features.can_return_rows_from_bulk_insert
    sql = _insert_sql(connection, model, tuple(fields), len(objs), ignore_conflicts, returning)
    params = []
    for obj in objs:
        for field in fields:
            value = field.pre_save(obj, True)
            if hasattr(value, "resolve_expression"):
                raise ValueError(f"{model.__name__}.{field.name}: insert() takes values, not expressions")
            params.append(field.get_db_prep_save(value, connection))
    with prepared_cursor(connection) as cursor:
        cursor.execute(sql, params)
        if returning:
            for obj, (pk,) in zip(objs, cursor.fetchall()):
                obj.pk = pk
    for obj in objs:
        obj._state.adding, obj._state.db = False, connection.alias
    return objs


def insert_orm(objs, *, ignore_conflicts=False):
    """insert in the ORM: bulk_create, which builds the statement anew each time (bench/queries.py compares them)."""
    if not objs:
        return objs
    return type(objs[0]).objects.bulk_create(objs, ignore_conflicts=ignore_conflicts)


_insert_statements = {}


def _insert_sql(connection, model, fields, rows, ignore_conflicts, returning):
    key = (connection.vendor, model, fields, rows, ignore_conflicts, returning)
    sql = _insert_statements.get(key)
    if sql is None:
        from django.db.models.constants import OnConflict

        ops, meta = connection.ops, model._meta
        on_conflict = OnConflict.IGNORE if ignore_conflicts else None
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        sql = (
            f"{ops.insert_statement(on_conflict=on_conflict)} {ops.quote_name(meta.db_table)}"
            f" ({', '.join(ops.quote_name(field.column) for field in fields)}) VALUES {', '.join([row] * rows)}"
        )
        suffix = ops.on_conflict_suffix_sql(fields, on_conflict, None, None) if ignore_conflicts else ""
        if suffix:
            sql += " " + suffix
        if returning:
            sql += " " + ops.return_insert_columns([meta.pk])[0]
        _insert_statements[key] = sql
    return sql
