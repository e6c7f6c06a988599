"""Every list, and availability, costs the same number of queries at any size."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reservations import services

from ..factories import RoomFactory, ServerFactory
from .conftest import H

pytestmark = pytest.mark.django_db


def queries(client, url):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured)


def fill(user, servers, bookings_per_server, start):
    """`servers` servers of 8 GPUs, a room each, and bookings of single GPUs, GPU pairs and whole servers."""
    for s in range(servers):
        server = ServerFactory(name=f"node{s:03d}-{bookings_per_server}", gpus=8)
        room = RoomFactory(name=f"Room {s}-{bookings_per_server}")
        for n in range(bookings_per_server):
            at = start + n * H
            target = [{"devices": "0"}, {"devices": "1-2"}, {}][n % 3]
            services.create_booking(user, start=at, end=at + H, server=server, purpose="load", **target)
        services.create_booking(user, start=start, end=start + H, room=room)


@pytest.fixture(autouse=True)
def token_use_noted(as_alice):
    """The first request of a token also notes its use (one UPDATE a minute); get it out of the way."""
    as_alice.get("/api/v1/me/")


def count_at_two_sizes(client, user, url, later):
    fill(user, 1, 3, later)
    small = queries(client, url)
    fill(user, 6, 12, later)
    large = queries(client, url)
    return small, large


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/bookings/",
        "/api/v1/bookings/?mine=1",
        "/api/v1/bookings/?state=upcoming&server=node000-3",
        "/api/v1/servers/",
        "/api/v1/devices/",
        "/api/v1/rooms/",
    ],
)
def test_a_list_page_costs_the_same_queries_at_any_size(as_alice, alice, later, url):
    small, large = count_at_two_sizes(as_alice, alice, url, later)

    assert small == large


def test_a_bookings_page_costs_auth_count_page_and_allocations(as_alice, alice, later):
    fill(alice, 2, 9, later)

    # token (with user and profile), count, the page (with user, profile, server, room), allocations
    assert queries(as_alice, "/api/v1/bookings/") == 4


def test_availability_costs_the_same_queries_at_any_size(as_alice, alice, later):
    url = f"/api/v1/availability/?start={later.isoformat().replace('+', '%2B')}"

    small, large = count_at_two_sizes(as_alice, alice, url, later)

    assert small == large == 4  # token, units, allocations in the window, their bookings with holders


def test_scoped_availability_costs_the_same_queries_at_any_size(as_alice, alice, later):
    small, large = count_at_two_sizes(as_alice, alice, "/api/v1/availability/?server=node000-3&room=Room 0-3", later)

    assert small == large == 6  # token, the server, the room, units, allocations, bookings
