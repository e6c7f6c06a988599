"""me/, servers/, devices/, rooms/."""
import pytest

from reservations.models import Profile

from ..factories import DeviceFactory, RoomFactory, ServerFactory
from .conftest import error_of

pytestmark = pytest.mark.django_db


def test_me_describes_the_member(as_alice, alice, settings):
    settings.TIME_ZONE = "UTC"

    assert as_alice.get("/api/v1/me/").json() == {
        "id": alice.pk,
        "username": "alice",
        "name": "Alice Liddell",
        "email": "alice@lab.example.org",
        "time_zone": "UTC",
        "is_staff": False,
    }


def test_me_gives_the_profile_time_zone_and_display_name(as_alice, alice):
    Profile.objects.filter(user=alice).update(time_zone="Europe/Paris", display_name="Al")

    body = as_alice.get("/api/v1/me/").json()

    assert (body["time_zone"], body["name"]) == ("Europe/Paris", "Al")


def test_servers_lists_each_server_with_its_devices(as_alice, thalys):
    ServerFactory(name="atlas", gpus=0)

    body = as_alice.get("/api/v1/servers/").json()

    assert body["count"] == 2
    atlas, listed = body["results"]
    assert atlas["name"] == "atlas" and atlas["devices"] == []
    assert listed["name"] == "thalys"
    assert [device["index"] for device in listed["devices"]] == list(range(8))
    assert set(listed["devices"][0]) == {"id", "index", "model", "memory_mib", "uuid", "active"}
    assert set(listed) == {"id", "name", "hostname", "location", "description", "active", "devices"}


def test_a_server_is_found_by_name_in_any_case(as_alice, thalys):
    body = as_alice.get("/api/v1/servers/THALYS/").json()

    assert body["id"] == thalys.pk and len(body["devices"]) == 8


def test_a_server_is_found_by_id(as_alice, thalys):
    assert as_alice.get(f"/api/v1/servers/{thalys.pk}/").json()["name"] == "thalys"


def test_an_unknown_server_is_404(as_alice, thalys):
    error = error_of(as_alice.get("/api/v1/servers/nowhere/"), 404, "not_found")

    assert "nowhere" in error["message"]


def test_devices_lists_every_gpu_with_its_server(as_alice, thalys):
    ServerFactory(name="atlas", gpus=2)

    body = as_alice.get("/api/v1/devices/").json()

    assert body["count"] == 10
    assert [(d["server"], d["index"]) for d in body["results"][:3]] == [("atlas", 0), ("atlas", 1), ("thalys", 0)]
    assert set(body["results"][0]) == {"id", "server", "index", "model", "memory_mib", "uuid", "active"}


def test_devices_filter_by_server_name(as_alice, thalys):
    ServerFactory(name="atlas", gpus=2)

    body = as_alice.get("/api/v1/devices/?server=Atlas").json()

    assert [(d["server"], d["index"]) for d in body["results"]] == [("atlas", 0), ("atlas", 1)]


def test_a_device_by_id(as_alice, thalys):
    device = thalys.devices.get(index=3)

    assert as_alice.get(f"/api/v1/devices/{device.pk}/").json()["index"] == 3


def test_rooms_lists_rooms(as_alice, room):
    RoomFactory(name="Attic", active=False)

    body = as_alice.get("/api/v1/rooms/").json()

    assert [(r["name"], r["active"]) for r in body["results"]] == [("Attic", False), ("Lab 2", True)]
    assert set(body["results"][1]) == {"id", "name", "capacity", "location", "description", "active"}


def test_a_room_by_id(as_alice, room):
    assert as_alice.get(f"/api/v1/rooms/{room.pk}/").json()["name"] == "Lab 2"


def test_an_unknown_room_is_404(as_alice, room):
    error_of(as_alice.get("/api/v1/rooms/99999/"), 404, "not_found")


def test_a_device_added_later_shows_on_its_server(as_alice, thalys):
    DeviceFactory(server=thalys, index=8)

    assert len(as_alice.get("/api/v1/servers/thalys/").json()["devices"]) == 9
