"""labres.db: prepared statements for the booking path, and the INSERT it writes rows with."""
from datetime import timedelta

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labres.db import insert, insert_orm, prepared_cursor
from notifications.models import OutboxEvent
from reservations import services
from reservations.errors import BookingConflict
from reservations.models import Allocation, Booking

pytestmark = pytest.mark.django_db
postgresql_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="prepared statements are PostgreSQL's")


def prepared_statements_like(marker):
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", [f"%{marker}%"])
        return [row[0] for row in cursor.fetchall()]


@postgresql_only
def test_a_statement_is_prepared_once_and_then_only_executed():
    for number in range(3):
        with prepared_cursor() as cursor:
            cursor.execute("SELECT %s::int + 1 AS prepared_marker_one", [number])
            assert cursor.fetchone() == (number + 1,)

    assert len(prepared_statements_like("prepared_marker_one")) == 1


@postgresql_only
def test_djangos_own_queries_stay_unprepared():
    with prepared_cursor() as cursor:
        cursor.execute("SELECT 1 AS prepared_marker_two")
    for _ in range(10):  # far past psycopg's default threshold of 5
        list(Booking.objects.filter(purpose="unprepared_marker").values_list("pk", flat=True))

    assert prepared_statements_like("prepared_marker_two")
    assert not prepared_statements_like("unprepared_marker")


@postgresql_only
def test_prepared_statements_can_be_turned_off_for_a_pooler(settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    with prepared_cursor() as cursor:
        cursor.execute("SELECT 1 AS prepared_marker_three")
        assert cursor.fetchone() == (1,)

    assert not prepared_statements_like("prepared_marker_three")


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_new_connection_prepares_again():
    with prepared_cursor() as cursor:
        cursor.execute("SELECT 1 AS prepared_marker_four")
    connection.close()  # statements belong to the session
    with prepared_cursor() as cursor:
        cursor.execute("SELECT 2 AS prepared_marker_four")
        assert cursor.fetchone() == (2,)

    assert len(prepared_statements_like("prepared_marker_four")) == 1


def test_errors_arrive_as_djangos_and_keep_the_databases_code():
    with pytest.raises(DatabaseError):
        with transaction.atomic(), prepared_cursor() as cursor:
            cursor.execute("SELECT no_such_column FROM reservations_booking")

    with pytest.raises(IntegrityError) as refused:
        with transaction.atomic():
            insert([OutboxEvent(key="twice", event="created", next_attempt_at=timezone.now())])
            insert([OutboxEvent(key="twice", event="created", next_attempt_at=timezone.now())])
    if connection.vendor == "postgresql":
        assert refused.value.__cause__.sqlstate == "23505"  # unique_violation


def test_while_django_logs_queries_they_read_as_it_writes_them():
    with CaptureQueriesContext(connection) as queries, prepared_cursor() as cursor:
        cursor.execute("SELECT %s AS logged_marker", [7])

    assert any(query["sql"] == "SELECT 7 AS logged_marker" for query in queries.captured_queries)


def test_insert_writes_what_save_would_and_sets_the_keys(alice, thalys, later):
    before = timezone.now()
    booking = Booking(user=alice, purpose="insert", start=later, end=later + timedelta(hours=1), server=thalys)
    with transaction.atomic():
        insert([booking])
        units = list(thalys.units.filter(kind="gpu").order_by("pk")[:3])
        allocations = insert([Allocation(booking=booking, unit=unit, start=booking.start, end=booking.end) for unit in units])

    assert booking.pk is not None and not booking._state.adding
    stored = Booking.objects.get(pk=booking.pk)
    assert (stored.user_id, stored.purpose, stored.start, stored.end, stored.server_id) == (alice.pk, "insert", later, later + timedelta(hours=1), thalys.pk)
    assert stored.status == Booking.Status.CONFIRMED and stored.sequence == 0  # the model's defaults
    assert before <= stored.created_at <= timezone.now()  # auto_now_add
    assert [a.pk for a in allocations] == list(Allocation.objects.filter(booking=booking).order_by("pk").values_list("pk", flat=True))
    assert sorted(a.unit_id for a in allocations) == [unit.pk for unit in units]


def test_insert_can_skip_a_row_whose_key_exists():
    first = OutboxEvent(key="once", event="created", next_attempt_at=timezone.now(), context={"é": ["json", 1]})
    insert([first], ignore_conflicts=True)
    insert([OutboxEvent(key="once", event="cancelled", next_attempt_at=timezone.now())], ignore_conflicts=True)

    stored = OutboxEvent.objects.get(key="once")
    assert (stored.event, stored.context) == ("created", {"é": ["json", 1]})


def test_insert_refuses_an_expression(alice, later):
    from django.db.models import F

    with pytest.raises(ValueError, match="takes values, not expressions"):
        insert([Booking(user=alice, start=later, end=later + timedelta(hours=1), purpose=F("source"))])


def test_a_booking_is_written_whole_or_not_at_all_when_its_allocations_are_refused(alice, bob, thalys, later):
    services.create_booking(alice, server=thalys, devices="1", start=later, end=later + timedelta(hours=1))
    count = Booking.objects.count()
    with pytest.raises(BookingConflict):
        services.create_booking(bob, server=thalys, devices="0-1", start=later, end=later + timedelta(hours=1))

    assert Booking.objects.count() == count
    assert not Allocation.objects.filter(booking__user=bob).exists()


def stored_rows(model, pks):
    fields = [field.attname for field in model._meta.concrete_fields if field.attname not in ("id", "booking_id", "created_at", "updated_at")]
    return [tuple(row) for row in model.objects.filter(pk__in=pks).order_by("pk").values_list(*fields)]


def test_insert_and_its_orm_twin_write_the_same_rows(alice, thalys, later):
    def booking_with_allocations(write):
        booking = Booking(user=alice, purpose="twins", start=later, end=later + timedelta(hours=1), server=thalys, cpu_cores=2)
        write([booking])
        units = list(thalys.units.filter(kind="gpu").order_by("pk")[:2])
        allocations = write([Allocation(booking=booking, unit=unit, start=booking.start, end=booking.end) for unit in units])
        assert booking.pk is not None and not booking._state.adding and all(a.pk is not None for a in allocations)
        rows = stored_rows(Booking, [booking.pk]), stored_rows(Allocation, [a.pk for a in allocations])
        Booking.objects.filter(pk=booking.pk).delete()  # the next one may hold the same GPUs
        return rows

    written = booking_with_allocations(insert)
    assert written == booking_with_allocations(insert_orm)
    assert written[0] and len(written[1]) == 2


def test_insert_orm_skips_a_row_whose_key_exists_as_insert_does():
    insert([OutboxEvent(key="once", event="created", next_attempt_at=timezone.now())], ignore_conflicts=True)
    insert_orm([OutboxEvent(key="once", event="cancelled", next_attempt_at=timezone.now())], ignore_conflicts=True)

    assert list(OutboxEvent.objects.values_list("key", "event")) == [("once", "created")]
