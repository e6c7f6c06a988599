"""GET availability/: every active unit in scope, who holds it in the window, free ones too."""
from datetime import timedelta

import pytest
from django.utils import timezone

from reservations import services

from ..factories import RoomFactory, ServerFactory
from .conftest import H, error_of

pytestmark = pytest.mark.django_db


def z(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def units_of(response):
    assert response.status_code == 200, response.content
    return {unit["unit"]: unit for unit in response.json()["units"]}


def window(start, hours=24):
    return {"start": start.isoformat(), "end": (start + timedelta(hours=hours)).isoformat()}


def test_every_active_unit_is_listed_in_order(as_alice, thalys, room):
    ServerFactory(name="atlas", gpus=1)
    ServerFactory(name="retired", gpus=1, active=False)
    RoomFactory(name="Attic", active=False)

    labels = [unit["unit"] for unit in as_alice.get("/api/v1/availability/").json()["units"]]

    assert labels == ["atlas", "atlas:0", "thalys"] + [f"thalys:{i}" for i in range(8)] + ["room Lab 2"]


def test_the_shape_of_each_unit(as_alice, thalys, room):
    units = units_of(as_alice.get("/api/v1/availability/"))

    assert units["thalys:3"] == {"unit": "thalys:3", "kind": "gpu", "server": "thalys", "device": 3, "room": None, "busy": []}
    assert units["thalys"] == {"unit": "thalys", "kind": "server", "server": "thalys", "device": None, "room": None, "busy": []}
    assert units["room Lab 2"] == {"unit": "room Lab 2", "kind": "room", "server": None, "device": None, "room": "Lab 2", "busy": []}


def test_the_default_window_is_the_next_24_hours(as_alice, thalys):
    before = timezone.now().replace(microsecond=0)

    body = as_alice.get("/api/v1/availability/").json()

    start = timezone.datetime.fromisoformat(body["start"])
    end = timezone.datetime.fromisoformat(body["end"])
    assert before <= start <= timezone.now()
    assert end - start == timedelta(hours=24)


def test_busy_intervals_name_the_holder(as_bob, alice, thalys, book, later):
    booking = book(alice, later, hours=2, server="thalys", devices="1", purpose="training resnet")

    units = units_of(as_bob.get("/api/v1/availability/", window(later - H)))

    assert units["thalys:1"]["busy"] == [
        {"booking": booking.pk, "user": "alice", "user_name": "Alice Liddell", "start": z(later), "end": z(later + 2 * H), "purpose": "training resnet"}
    ]
    assert units["thalys:0"]["busy"] == [] and units["thalys"]["busy"] == []


def test_a_whole_server_booking_holds_the_server_and_each_gpu(as_alice, alice, thalys, book, later):
    booking = book(alice, later, server="thalys")

    units = units_of(as_alice.get("/api/v1/availability/", window(later)))

    assert {unit: [b["booking"] for b in entry["busy"]] for unit, entry in units.items()} == {
        label: [booking.pk] for label in ["thalys"] + [f"thalys:{i}" for i in range(8)]
    }


def test_busy_is_ordered_by_start(as_alice, alice, bob, thalys, book, later):
    second = book(bob, later + 2 * H, server="thalys", devices="0")
    first = book(alice, later, server="thalys", devices="0")

    units = units_of(as_alice.get("/api/v1/availability/", window(later)))

    assert [b["booking"] for b in units["thalys:0"]["busy"]] == [first.pk, second.pk]


def test_bookings_outside_the_window_and_cancelled_ones_are_not_busy(as_alice, alice, thalys, book, later):
    book(alice, later - 2 * H, server="thalys", devices="0")  # ends as the window starts
    book(alice, later + 24 * H, server="thalys", devices="0")  # starts as it ends
    cancelled = book(alice, later + H, server="thalys", devices="0")
    services.cancel_booking(cancelled, by=alice)

    assert units_of(as_alice.get("/api/v1/availability/", window(later)))["thalys:0"]["busy"] == []


def test_a_room_booking_makes_the_room_busy(as_alice, alice, room, book, later):
    booking = book(alice, later, room="Lab 2")

    units = units_of(as_alice.get("/api/v1/availability/", window(later)))

    assert [b["booking"] for b in units["room Lab 2"]["busy"]] == [booking.pk]


def test_server_narrows_to_its_units(as_alice, thalys, room):
    ServerFactory(name="atlas", gpus=2)

    labels = [u["unit"] for u in as_alice.get("/api/v1/availability/?server=Atlas").json()["units"]]

    assert labels == ["atlas", "atlas:0", "atlas:1"]


def test_room_narrows_to_the_room(as_alice, thalys, room):
    assert [u["unit"] for u in as_alice.get("/api/v1/availability/?room=lab 2").json()["units"]] == ["room Lab 2"]


def test_server_and_room_give_both(as_alice, thalys, room):
    ServerFactory(name="atlas", gpus=1)

    labels = [u["unit"] for u in as_alice.get("/api/v1/availability/?server=atlas&room=Lab 2").json()["units"]]

    assert labels == ["atlas", "atlas:0", "room Lab 2"]


def test_server_scope_keeps_busy_intervals(as_alice, alice, thalys, book, later):
    booking = book(alice, later, server="thalys", devices="4")

    units = units_of(as_alice.get("/api/v1/availability/", {**window(later), "server": "thalys"}))

    assert [b["booking"] for b in units["thalys:4"]["busy"]] == [booking.pk]


def test_an_unknown_server_is_400(as_alice, thalys):
    error = error_of(as_alice.get("/api/v1/availability/?server=nowhere"), 400, "invalid")

    assert error["fields"] == {"server": ["There is no server 'nowhere'."]}


def test_a_window_over_31_days_is_400(as_alice, thalys, later):
    error = error_of(as_alice.get("/api/v1/availability/", window(later, hours=32 * 24)), 400, "invalid")

    assert error["fields"] == {"end": ["A window spans at most 31 days."]}


def test_a_window_of_exactly_31_days_is_fine(as_alice, thalys, later):
    assert as_alice.get("/api/v1/availability/", window(later, hours=31 * 24)).status_code == 200


def test_an_end_before_the_start_is_400(as_alice, thalys, later):
    error_of(as_alice.get("/api/v1/availability/", {"start": later.isoformat(), "end": (later - H).isoformat()}), 400, "invalid")


def test_a_start_that_is_not_a_time_is_400(as_alice, thalys):
    assert set(error_of(as_alice.get("/api/v1/availability/?start=soon"), 400, "invalid")["fields"]) == {"start"}


def test_a_naive_window_is_read_in_the_members_zone(as_alice, alice, thalys):
    alice.profile.time_zone = "Asia/Kolkata"
    alice.profile.save()

    body = as_alice.get("/api/v1/availability/?start=2030-01-01T05:30&end=2030-01-02T05:30").json()

    assert (body["start"], body["end"]) == ("2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z")


def test_busy_times_match_the_bookings_own_to_the_microsecond(as_alice, thalys):
    claimed = as_alice.post("/api/v1/claims/", {"server": "thalys", "devices": "6", "duration": "1h"}).json()

    [busy] = units_of(as_alice.get("/api/v1/availability/"))["thalys:6"]["busy"]

    assert "." in claimed["start"]  # a claim starts now, to the microsecond
    assert (busy["start"], busy["end"]) == (claimed["start"], claimed["end"])
