"""Times within reach and plain text: the database refuses a booking outside 1970 to 2999 (UTC).

A booking stored outside that window before (year 10000 on PostgreSQL, which Python cannot read
back) is cancelled and moved to the moment it was made, and its pending messages are dropped,
so the constraint can be added and every page reads again.
On SQLite adding a constraint rebuilds the table, which drops the allocation table's overlap
triggers (migration 0002): they are created again right after.
"""
import datetime
import importlib
from datetime import timedelta

import reservations.text
from django.conf import settings
from django.db import migrations, models
from django.db.models import F, OuterRef, Q, Subquery

EARLIEST = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
LATEST = datetime.datetime(3000, 1, 1, tzinfo=datetime.timezone.utc)
OVERLAP = importlib.import_module("reservations.migrations.0002_no_overlapping_allocations")


def cancel_bookings_out_of_reach(apps, schema_editor):
    Booking = apps.get_model("reservations", "Booking")
    Allocation = apps.get_model("reservations", "Allocation")
    ids = list(Booking.objects.filter(Q(start__lt=EARLIEST) | Q(end__gt=LATEST)).values_list("pk", flat=True))
    if not ids:
        return
    made = Subquery(Booking.objects.filter(pk=OuterRef("booking_id")).values("created_at")[:1])
    Allocation.objects.filter(booking_id__in=ids).update(active=False, start=made, end=made + timedelta(minutes=1))
    Booking.objects.filter(pk__in=ids).update(
        status="cancelled", start=F("created_at"), end=F("created_at") + timedelta(minutes=1), sequence=F("sequence") + 1,
    )
    for model, done in (("OutboxEvent", "expanded"), ("Notification", "failed")):
        try:
            rows = apps.get_model("notifications", model).objects.filter(booking_id__in=ids).exclude(state__in=["expanded", "sent", "failed"])
        except LookupError:  # notifications not migrated yet: nothing was sent about these
            continue
        rows.update(state=done, last_error="Dropped: the booking's times were out of range (cancelled by migration 0014).")


def recreate_sqlite_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in OVERLAP.SQLITE_BACKWARD + OVERLAP.SQLITE_FORWARD:
            schema_editor.execute(statement)



class Migration(migrations.Migration):

    dependencies = [
        ('reservations', '0013_waitlist'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(cancel_bookings_out_of_reach, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='booking',
            name='decision_note',
            field=models.CharField(blank=True, help_text='The reason given to the member on a decline.', max_length=500, validators=[reservations.text.refuse_control_characters]),
        ),
        migrations.AlterField(
            model_name='booking',
            name='purpose',
            field=models.CharField(blank=True, max_length=200, validators=[reservations.text.refuse_control_characters]),
        ),
        migrations.AlterField(
            model_name='bookingseries',
            name='purpose',
            field=models.CharField(blank=True, max_length=200, validators=[reservations.text.refuse_control_characters]),
        ),
        migrations.AlterField(
            model_name='profile',
            name='display_name',
            field=models.CharField(blank=True, help_text='How others see you; empty means your full name.', max_length=100, validators=[reservations.text.refuse_control_characters]),
        ),
        migrations.AlterField(
            model_name='waitlistentry',
            name='purpose',
            field=models.CharField(blank=True, max_length=200, validators=[reservations.text.refuse_control_characters]),
        ),
        migrations.RunPython(migrations.RunPython.noop, recreate_sqlite_triggers),  # after RemoveConstraint, going back
        migrations.AddConstraint(
            model_name='allocation',
            constraint=models.CheckConstraint(condition=models.Q(('end__lte', datetime.datetime(3000, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)), ('start__gte', datetime.datetime(1970, 1, 1, 0, 0, tzinfo=datetime.timezone.utc))), name='allocation_within_reach'),
        ),
        migrations.AddConstraint(
            model_name='booking',
            constraint=models.CheckConstraint(condition=models.Q(('end__lte', datetime.datetime(3000, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)), ('start__gte', datetime.datetime(1970, 1, 1, 0, 0, tzinfo=datetime.timezone.utc))), name='booking_within_reach'),
        ),
        migrations.RunPython(recreate_sqlite_triggers, migrations.RunPython.noop),
    ]
