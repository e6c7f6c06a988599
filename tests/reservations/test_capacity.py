"""Pooled capacities: CPU cores and memory shared by bookings, never more than the server has at any instant."""
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from reservations import services
from reservations.services.capacity import peak_load
from reservations.errors import BookingConflict, BookingError, CapacityExceeded
from reservations.models import Booking
from tests.factories import ServerFactory, UserFactory

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)


@pytest.fixture
def big(db):
    return ServerFactory(name="big", gpus=4, cpu_cores=128, memory_gib=1024)


def share(user, server, start, hours=1, **amounts):
    return services.create_booking(user, server=server, start=start, end=start + hours * H, **amounts)


def test_a_booking_may_ask_for_cores_and_memory_alone_or_with_gpus(alice, bob, big, later):
    alone = share(alice, big, later, cpu_cores=32, memory_gib=256)
    with_gpus = services.create_booking(bob, server=big, devices="0-1", cpu_cores=16, start=later, end=later + H)
    assert not alone.whole_server and alone.allocations.count() == 0
    assert alone.what == "big: 32 CPU cores, 256 GiB"
    assert with_gpus.what == "big:0-1 + 16 CPU cores" and with_gpus.allocations.count() == 2


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo"])
def test_times_in_any_zone_are_compared_as_instants(alice, bob, big, later, zone):
    """A form or the API hands the service times in the member's zone: on SQLite, whose stored times are
    naive UTC text, they must be compared as the same instants (the check once let 1000 + 64 GiB of 1024 in)."""
    share(bob, big, later, memory_gib=1000)
    there = later.astimezone(ZoneInfo(zone))

    with pytest.raises(CapacityExceeded, match="1000 are booked"):
        share(alice, big, there, memory_gib=64)
    assert share(alice, big, there + H, memory_gib=64).pk  # right after it: back to back


def test_the_sum_at_any_instant_stays_within_the_capacity(alice, bob, big, later):
    share(alice, big, later, hours=2, cpu_cores=100)
    share(bob, big, later + 2 * H, cpu_cores=128)  # back to back: never at the same instant
    assert share(bob, big, later, hours=2, cpu_cores=28).pk  # 100 + 28 = 128: exactly full
    with pytest.raises(CapacityExceeded) as refused:
        share(bob, big, later + H, hours=2, cpu_cores=1)
    message = str(refused.value)
    assert message.startswith("Server big has 128 CPU cores; 128 are booked from ")
    assert "so 0 are free then and you asked for 1. Enough is free from " in message
    assert refused.value.field == "cpu_cores"


def test_memory_is_checked_on_its_own(alice, bob, big, later):
    share(alice, big, later, memory_gib=1000, cpu_cores=1)
    with pytest.raises(CapacityExceeded, match="has 1024 GiB of memory; 1000 are booked .* so 24 are free then and you asked for 25"):
        share(bob, big, later, memory_gib=25)


def test_a_whole_server_booking_takes_all_of_it(alice, bob, big, later):
    share(alice, big, later, cpu_cores=1)
    with pytest.raises(CapacityExceeded, match="you asked for all of them \\(the whole server\\)"):
        services.create_booking(bob, server=big, start=later, end=later + H)
    whole = services.create_booking(bob, server=big, start=later + H, end=later + 2 * H)
    assert whole.whole_server
    with pytest.raises(CapacityExceeded, match="128 are booked"):
        share(alice, big, later + H, cpu_cores=1)


def test_bad_amounts_say_what_would_be_right(alice, big, thalys, room, later):
    with pytest.raises(BookingError, match="Server thalys has no pooled CPU cores to book"):
        share(alice, thalys, later, cpu_cores=4)
    with pytest.raises(BookingError, match="a room is booked as a whole"):
        services.create_booking(alice, room=room, cpu_cores=4, start=later, end=later + H)
    with pytest.raises(BookingError, match="must be a whole number"):
        share(alice, big, later, cpu_cores=-3)
    with pytest.raises(CapacityExceeded, match="has 128 CPU cores in all; you asked for 200"):
        share(alice, big, later, cpu_cores=200)
    assert not Booking.objects.exists()


def test_moving_or_extending_a_share_rechecks_the_capacity(alice, bob, big, later):
    first = share(alice, big, later, cpu_cores=100)
    share(bob, big, later + H, cpu_cores=100)
    with pytest.raises(CapacityExceeded):
        services.extend_booking(first, by=alice, duration="30m")
    assert services.change_booking(first, by=alice, start=later - H + timedelta(minutes=30), end=later + H).pk


def test_released_shares_free_their_capacity_from_the_release(alice, bob, big):
    from django.utils import timezone

    now = timezone.now()
    running = services.create_booking(alice, server=big, cpu_cores=128, start=now - H, end=now + 3 * H, now=now - H)
    services.release_booking(running, by=alice)
    assert share(bob, big, timezone.now() + timedelta(minutes=1), cpu_cores=128).pk


@pytest.mark.parametrize("intervals, expected", [
    ([], 0),
    ([(0, 2, 5), (1, 3, 7)], 12),
    ([(0, 1, 5), (1, 2, 7)], 7),  # half-open: one ends when the other starts
    ([(0, 4, 1), (1, 2, 2), (3, 4, 2)], 3),
])
def test_peak_load(intervals, expected, later):
    as_times = [(later + a * H, later + b * H, n) for a, b, n in intervals]
    assert peak_load(as_times, later, later + 10 * H)[0] == expected


# A random schedule of requests of different shapes: whatever is accepted never exceeds the capacity.
requests = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=20),  # start, in half hours from the base
        st.integers(min_value=1, max_value=8),  # length, in half hours
        st.integers(min_value=0, max_value=80),  # CPU cores
        st.integers(min_value=0, max_value=600),  # GiB
        st.sampled_from(["share", "share", "gpus", "whole"]),
    ),
    min_size=1, max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests)
def test_a_random_schedule_never_exceeds_the_capacity(later, schedule):
    server = ServerFactory(gpus=2, cpu_cores=128, memory_gib=1024)
    user = UserFactory()
    half = timedelta(minutes=30)
    for offset, length, cores, gib, shape in schedule:
        start, end = later + offset * half, later + (offset + length) * half
        kwargs = {"cpu_cores": cores, "memory_gib": gib}
        if shape == "gpus":
            kwargs["devices"] = "0"
        elif shape == "whole":
            kwargs = {}
        elif not (cores or gib):
            continue
        try:
            services.create_booking(user, server=server, start=start, end=end, **kwargs)
        except (CapacityExceeded, BookingConflict):
            pass
    held = list(Booking.objects.filter(server=server, status__in=Booking.HOLDING))
    for field, capacity in (("cpu_cores", 128), ("memory_gib", 1024)):
        intervals = [(b.start, b.end, capacity if b.whole_server else getattr(b, field)) for b in held]
        assert peak_load(intervals, later, later + 30 * half)[0] <= capacity


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_shares_racing_for_the_last_cores_at_most_fill_the_server(db_vendor, later):
    if db_vendor != "postgresql":
        pytest.skip("SQLite serializes writers with BEGIN IMMEDIATE; the threads race on PostgreSQL")
    from tests.reservations.test_races import race

    server = ServerFactory(name="pool", gpus=0, cpu_cores=100)
    members = [UserFactory(username=f"racer{i}") for i in range(8)]

    results = race([lambda user=user: share(user, server, later, cpu_cores=30) for user in members])

    assert sum(1 for r in results if hasattr(r, "cpu_cores")) == 3  # 3 x 30 = 90; a fourth would be 120
    assert all(isinstance(r, CapacityExceeded) for r in results if not hasattr(r, "cpu_cores")), results


def test_the_api_books_shares_and_says_what_is_free(alice, bob, big, later):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(alice)
    body = {"server": "big", "cpu_cores": 100, "memory_gib": 512, "start": later.isoformat(), "duration": "2h"}
    created = api.post("/api/v1/bookings/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["cpu_cores"] == 100 and created.json()["what"] == "big: 100 CPU cores, 512 GiB"

    api.force_authenticate(bob)
    refused = api.post("/api/v1/bookings/", {**body, "cpu_cores": 30}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"] == {"cpu_cores": [refused.json()["error"]["message"]]}
    assert "28 are free then and you asked for 30" in refused.json()["error"]["message"]
    negative = api.post("/api/v1/bookings/", {**body, "cpu_cores": -1}, format="json")
    assert negative.status_code == 400 and "cpu_cores" in negative.json()["error"]["fields"]
