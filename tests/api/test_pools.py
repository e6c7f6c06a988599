"""Pooled CPU cores and memory in the API: free amounts in availability/, shares in claims/."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reservations import services
from reservations.models import Booking

from ..factories import ServerFactory
from .conftest import H, error_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def big(db):
    return ServerFactory(name="big", gpus=2, cpu_cores=128, memory_gib=1024)


def window(start, hours=24):
    return {"start": start.isoformat(), "end": (start + timedelta(hours=hours)).isoformat()}


def unit(response, label):
    assert response.status_code == 200, response.content
    return next(entry for entry in response.json()["units"] if entry["unit"] == label)


def test_availability_says_how_much_of_each_pool_is_booked_and_free_in_the_window(as_bob, alice, bob, big, later):
    services.create_booking(alice, start=later, end=later + 2 * H, server="big", cpu_cores=32, memory_gib=256)
    services.create_booking(bob, start=later + H, end=later + 3 * H, server="big", devices=[0], cpu_cores=16)
    services.create_booking(bob, start=later + 10 * H, end=later + 11 * H, server="big", memory_gib=512)

    pool = unit(as_bob.get("/api/v1/availability/", window(later, hours=4)), "big")["pool"]

    # The most at one instant: 48 cores (both, 1 h in); 256 GiB (the 512 GiB booking is outside the window).
    assert pool == {
        "cpu_cores": {"capacity": 128, "booked": 48, "free": 80},
        "memory_gib": {"capacity": 1024, "booked": 256, "free": 768},
    }


def test_a_whole_server_booking_leaves_nothing_free(as_bob, alice, big, later):
    services.create_booking(alice, start=later, end=later + H, server="big")

    pool = unit(as_bob.get("/api/v1/availability/", window(later)), "big")["pool"]

    assert pool["cpu_cores"] == {"capacity": 128, "booked": 128, "free": 0}
    assert pool["memory_gib"]["free"] == 0


def test_a_pool_the_server_does_not_declare_is_null_and_other_units_have_no_pool(as_bob, later):
    ServerFactory(name="cores", gpus=1, cpu_cores=64)

    response = as_bob.get("/api/v1/availability/", window(later))

    assert unit(response, "cores")["pool"] == {"cpu_cores": {"capacity": 64, "booked": 0, "free": 64}, "memory_gib": None}
    assert "pool" not in unit(response, "cores:0")


def test_availability_queries_do_not_grow_with_pooled_servers(as_bob, alice, big, later):
    services.create_booking(alice, start=later, end=later + H, server="big", cpu_cores=4)
    as_bob.get("/api/v1/availability/", window(later))
    with CaptureQueriesContext(connection) as few:
        as_bob.get("/api/v1/availability/", window(later))
    for n in range(5):
        server = ServerFactory(gpus=1, cpu_cores=16, memory_gib=64)
        services.create_booking(alice, start=later + n * H, end=later + (n + 1) * H, server=server.name, memory_gib=8)
    with CaptureQueriesContext(connection) as many:
        response = as_bob.get("/api/v1/availability/", window(later))
    assert sum(1 for entry in response.json()["units"] if entry.get("pool")) == 6
    assert len(many) == len(few)


def test_a_claim_may_ask_for_shares_alone(as_alice, big):
    response = as_alice.post("/api/v1/claims/", {"server": "big", "duration": "1h", "cpu_cores": 8, "memory_gib": 32}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["cpu_cores"], body["memory_gib"], body["devices"], body["what"]) == (8, 32, None, "big: 8 CPU cores, 32 GiB")


def test_a_claim_over_capacity_is_refused_naming_the_field(as_alice, bob, big):
    now = timezone.now()
    services.create_booking(bob, start=now, end=now + 2 * H, server="big", cpu_cores=120, now=now)

    response = as_alice.post("/api/v1/claims/", {"server": "big", "duration": "1h", "cpu_cores": 16}, format="json")

    error = error_of(response, 400, "invalid")
    assert "8 are free then and you asked for 16" in error["fields"]["cpu_cores"][0]
    assert Booking.objects.count() == 1
