"""Allocation.Meta declares the exclusion constraint that migration 0002 created on PostgreSQL.

State only: databases migrated already keep the constraint 0002 made (same name, same
definition), and a fresh one gets it from 0002 too; SQLite keeps 0002's triggers.
"""
import django.contrib.postgres.fields.ranges
from django.db import migrations, models

import reservations.models.bookings


class Migration(migrations.Migration):
    dependencies = [("reservations", "0019_booking_audit_entries")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AddConstraint(
                    model_name="allocation",
                    constraint=reservations.models.bookings.PostgresExclusionConstraint(
                        condition=models.Q(("active", True)),
                        expressions=[
                            ("unit", "="),
                            (reservations.models.bookings.TsTzRange("start", "end", django.contrib.postgres.fields.ranges.RangeBoundary()), "&&"),
                        ],
                        name="allocation_no_overlap",
                    ),
                ),
            ],
        ),
    ]
