"""The database refuses two active allocations of one unit whose [start, end) intervals overlap.

PostgreSQL: an exclusion constraint over (unit WITH =, tstzrange(start, end, '[)') WITH &&),
active rows only, which needs btree_gist (a trusted extension: the database owner may create it).
SQLite: triggers that abort the insert or update; the booking services also run their check
and write inside one BEGIN IMMEDIATE transaction, so writers are serialized.
"""
from django.db import migrations

TABLE = "reservations_allocation"

POSTGRES_FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    f"""ALTER TABLE {TABLE} ADD CONSTRAINT allocation_no_overlap
        EXCLUDE USING gist (unit_id WITH =, tstzrange("start", "end", '[)') WITH &&)
        WHERE (active)""",
]
POSTGRES_BACKWARD = [f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS allocation_no_overlap"]

# The message must contain 'allocation_overlap': the services recognise the error by it.
_SQLITE_OVERLAP = f"""
    NEW.active AND EXISTS (
        SELECT 1 FROM {TABLE} other
        WHERE other.unit_id = NEW.unit_id AND other.active AND other.id IS NOT NEW.id
          AND other."start" < NEW."end" AND NEW."start" < other."end"
    )"""
SQLITE_FORWARD = [
    f"""CREATE TRIGGER allocation_no_overlap_insert BEFORE INSERT ON {TABLE}
        WHEN {_SQLITE_OVERLAP}
        BEGIN SELECT RAISE(ABORT, 'allocation_overlap: unit already held at that time'); END""",
    f"""CREATE TRIGGER allocation_no_overlap_update BEFORE UPDATE OF unit_id, "start", "end", active ON {TABLE}
        WHEN {_SQLITE_OVERLAP}
        BEGIN SELECT RAISE(ABORT, 'allocation_overlap: unit already held at that time'); END""",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS allocation_no_overlap_insert",
    "DROP TRIGGER IF EXISTS allocation_no_overlap_update",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("reservations", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": POSTGRES_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        )
    ]
