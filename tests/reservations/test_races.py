"""Real concurrency: threads with their own database connections race to book at once."""
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection

from reservations import locking, services
from reservations.errors import BookingConflict
from reservations.models import Allocation
from tests.factories import ServerFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.race]
RACERS = 16


def race(attempts):
    """Run each callable in its own thread, released together; return what each returned or raised."""
    barrier = threading.Barrier(len(attempts))
    results = [None] * len(attempts)

    def run(i, attempt):
        try:
            barrier.wait(timeout=30)
            results[i] = attempt()
        except Exception as error:  # the outcome under test, kept for the assertions
            results[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, attempt)) for i, attempt in enumerate(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a racer hung"
    return results


def assert_no_overlaps():
    rows = Allocation.objects.filter(active=True).order_by("unit_id", "start").values_list("unit_id", "start", "end")
    previous = {}
    for unit_id, start, end in rows:
        if unit_id in previous:
            assert previous[unit_id] <= start, f"unit {unit_id} is held twice at {start}"
        previous[unit_id] = end


def outcome(results):
    return Counter("booked" if hasattr(r, "allocations") else type(r).__name__ for r in results)


@pytest.fixture
def racers():
    return [UserFactory(username=f"racer{i}") for i in range(RACERS)]


@pytest.fixture
def start(later):
    return later


def test_sixteen_racers_for_one_gpu_exactly_one_wins(racers, start):
    ServerFactory(name="thalys", gpus=8)
    # Every racer asks for GPU 3, each at a slightly different overlapping time.
    attempts = [
        (lambda user=user, i=i: services.create_booking(
            user, start=start + timedelta(minutes=i), end=start + timedelta(hours=2, minutes=i), server="thalys", devices="3"
        ))
        for i, user in enumerate(racers)
    ]

    results = race(attempts)

    assert outcome(results) == {"booked": 1, "BookingConflict": RACERS - 1}
    winner = next(r for r in results if not isinstance(r, Exception))
    for loser in (r for r in results if isinstance(r, BookingConflict)):
        assert [c.booking.pk for c in loser.conflicts] == [winner.pk]
        assert f"booked by {winner.user.username}" in loser.message
    assert_no_overlaps()
    assert Allocation.objects.filter(active=True).count() == 1


def test_whole_server_and_single_gpus_racing_never_overlap(racers, start):
    ServerFactory(name="thalys", gpus=8)
    # Half ask for the whole server, half for one GPU each (GPUs 0-7): either one whole-server
    # booking wins alone, or GPU bookings win and every whole-server attempt loses. Several
    # rounds, because a deadlock between writers shows only in some interleavings.
    for round_start in (start + timedelta(hours=2 * n) for n in range(8)):
        attempts = []
        for i, user in enumerate(racers):
            devices = None if i % 2 == 0 else str(i // 2)
            attempts.append(lambda user=user, devices=devices, at=round_start: services.create_booking(
                user, start=at, end=at + timedelta(hours=1), server="thalys", devices=devices
            ))

        results = race(attempts)

        booked = [r for r in results if not isinstance(r, Exception)]
        assert all(isinstance(r, BookingConflict) for r in results if isinstance(r, Exception)), outcome(results)
        whole = [b for b in booked if b.whole_server]
        assert len(whole) <= 1
        if whole:
            assert booked == whole
        else:
            assert len(booked) >= 1
    assert_no_overlaps()


def test_extend_and_new_booking_racing_for_the_same_slot(racers, start):
    ServerFactory(name="thalys", gpus=8)
    owner = racers[0]
    mine = services.create_booking(owner, start=start, end=start + timedelta(hours=1), server="thalys", devices="0-1")
    attempts = [lambda: services.extend_booking(mine, by=owner, duration="1h")]
    attempts += [
        (lambda user=user: services.create_booking(
            user, start=start + timedelta(hours=1), end=start + timedelta(hours=2), server="thalys", devices="1"
        ))
        for user in racers[1:8]
    ]

    results = race(attempts)

    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1
    assert all(isinstance(r, BookingConflict) for r in results if isinstance(r, Exception)), outcome(results)
    assert_no_overlaps()


@pytest.mark.postgres
def test_a_writer_kept_waiting_too_long_is_told_to_try_again(racers, start, db_vendor, monkeypatch):
    if db_vendor != "postgresql":
        pytest.skip("SQLite serializes writers with BEGIN IMMEDIATE and its busy timeout instead")
    from django.db import transaction

    from reservations.errors import Busy
    from reservations.models import Unit

    monkeypatch.setattr(locking, "LOCK_TIMEOUT", "300ms")
    ServerFactory(name="thalys", gpus=8)
    gpu = Unit.objects.get(device__server__name="thalys", device__index=0)
    locked, release = threading.Event(), threading.Event()

    def hold_the_unit():
        try:
            with transaction.atomic():
                locking.lock(gpu)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_unit)
    holder.start()
    try:
        assert locked.wait(timeout=30)
        with pytest.raises(Busy, match="try again"):
            services.create_booking(racers[0], start=start, end=start + timedelta(hours=1), server="thalys", devices="0-1")
    finally:
        release.set()
        holder.join(timeout=30)
    assert not Allocation.objects.exists()
    # Once the other writer is done, the same request goes through.
    assert services.create_booking(racers[0], start=start, end=start + timedelta(hours=1), server="thalys", devices="0-1")
