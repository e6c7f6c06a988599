"""GET bookings/: the booking shape, each filter, ordering and pagination."""
from datetime import timedelta

import pytest
from django.utils import timezone

from reservations import services

from ..factories import ServerFactory
from .conftest import H, error_of

pytestmark = pytest.mark.django_db


def ids(response):
    assert response.status_code == 200, response.content
    return [booking["id"] for booking in response.json()["results"]]


def test_a_booking_is_shown_with_every_field(as_bob, alice, upcoming):
    body = as_bob.get(f"/api/v1/bookings/{upcoming.pk}/").json()

    assert body == {
        "id": upcoming.pk,
        "user": "alice",
        "user_name": "Alice Liddell",
        "purpose": "eval",
        "start": upcoming.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": (upcoming.start + H).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "status": "confirmed",
        "state": "upcoming",
        "source": "web",
        "server": "thalys",
        "devices": "1-2",
        "device_ids": list(upcoming.server.devices.filter(index__in=[1, 2]).order_by("index").values_list("pk", flat=True)),
        "whole_server": False,
        "room": None,
        "cpu_cores": 0,
        "memory_gib": 0,
        "what": "thalys:1-2",
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
        "series": None,
    }
    assert body["created_at"].endswith("Z")


def test_times_are_given_in_utc_whatever_the_members_zone(as_alice, alice, upcoming):
    alice.profile.time_zone = "Asia/Tokyo"
    alice.profile.save()

    body = as_alice.get(f"/api/v1/bookings/{upcoming.pk}/").json()

    assert body["start"] == upcoming.start.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_whole_server_booking_has_no_devices(as_alice, alice, thalys, book, later):
    booking = book(alice, later, server="thalys")

    body = as_alice.get(f"/api/v1/bookings/{booking.pk}/").json()

    assert (body["whole_server"], body["devices"], body["device_ids"], body["what"]) == (True, None, [], "thalys (whole server)")


def test_a_room_booking_names_the_room(as_alice, alice, room, book, later):
    booking = book(alice, later, room="Lab 2")

    body = as_alice.get(f"/api/v1/bookings/{booking.pk}/").json()

    assert (body["room"], body["server"], body["devices"], body["what"]) == ("Lab 2", None, None, "room Lab 2")


def test_bookings_are_listed_by_start(as_alice, alice, bob, thalys, book, later):
    third = book(alice, later + 2 * H, server="thalys", devices="0")
    first = book(bob, later, server="thalys", devices="0")
    second = book(alice, later + H, server="thalys", devices="0")

    assert ids(as_alice.get("/api/v1/bookings/")) == [first.pk, second.pk, third.pk]


def test_mine_lists_only_the_members_bookings(as_alice, alice, bob, thalys, book, later):
    own = book(alice, later, server="thalys", devices="0")
    book(bob, later, server="thalys", devices="1")

    assert ids(as_alice.get("/api/v1/bookings/?mine=1")) == [own.pk]


def test_mine_0_lists_everyones(as_alice, alice, bob, thalys, book, later):
    book(alice, later, server="thalys", devices="0")
    book(bob, later, server="thalys", devices="1")

    assert len(ids(as_alice.get("/api/v1/bookings/?mine=0"))) == 2


def test_user_filters_by_user_name(as_alice, alice, bob, thalys, book, later):
    book(alice, later, server="thalys", devices="0")
    bobs = book(bob, later, server="thalys", devices="1")

    assert ids(as_alice.get("/api/v1/bookings/?user=bob")) == [bobs.pk]


def test_server_filters_by_server_name(as_alice, alice, thalys, book, later):
    ServerFactory(name="atlas", gpus=2)
    on_thalys = book(alice, later, server="thalys", devices="0")
    book(alice, later, server="atlas", devices="0")

    assert ids(as_alice.get("/api/v1/bookings/?server=Thalys")) == [on_thalys.pk]


def test_device_filter_includes_whole_server_bookings(as_alice, alice, thalys, book, later):
    on_gpu = book(alice, later, server="thalys", devices="2")
    book(alice, later, server="thalys", devices="3")
    whole = book(alice, later + H, server="thalys")
    device = thalys.devices.get(index=2)

    assert ids(as_alice.get(f"/api/v1/bookings/?device={device.pk}")) == [on_gpu.pk, whole.pk]


def test_room_filters_by_room_name(as_alice, alice, thalys, room, book, later):
    in_room = book(alice, later, room="Lab 2")
    book(alice, later, server="thalys", devices="0")

    assert ids(as_alice.get("/api/v1/bookings/?room=lab 2")) == [in_room.pk]


def test_status_filter(as_alice, alice, upcoming, running):
    services.cancel_booking(upcoming, by=alice)

    assert ids(as_alice.get("/api/v1/bookings/?status=cancelled")) == [upcoming.pk]
    assert ids(as_alice.get("/api/v1/bookings/?status=confirmed")) == [running.pk]


def test_state_filter(as_alice, alice, thalys, upcoming, running):
    past_start = timezone.now() - timedelta(days=2)
    ended = services.create_booking(alice, start=past_start, end=past_start + H, server="thalys", devices="5", now=past_start)
    start = timezone.now() - timedelta(minutes=2)
    released = services.create_booking(alice, start=start, end=start + H, server="thalys", devices="6", now=start)
    services.release_booking(released, by=alice)

    assert ids(as_alice.get("/api/v1/bookings/?state=upcoming")) == [upcoming.pk]
    assert ids(as_alice.get("/api/v1/bookings/?state=running")) == [running.pk]
    assert ids(as_alice.get("/api/v1/bookings/?state=ended")) == [ended.pk]
    assert ids(as_alice.get("/api/v1/bookings/?state=released")) == [released.pk]
    assert ids(as_alice.get("/api/v1/bookings/?state=cancelled")) == []


def test_window_lists_bookings_overlapping_it(as_alice, alice, thalys, book, later):
    book(alice, later, server="thalys", devices="0")  # ends as the window starts
    inside = book(alice, later + H, server="thalys", devices="0")
    book(alice, later + 3 * H, server="thalys", devices="0")  # starts as the window ends
    window = {"start": (later + H).isoformat(), "end": (later + 3 * H).isoformat()}

    assert ids(as_alice.get("/api/v1/bookings/", window)) == [inside.pk]


def test_a_naive_window_is_read_in_the_members_zone(as_alice, alice, thalys, book, later):
    alice.profile.time_zone = "Asia/Kolkata"  # UTC+5:30, no daylight saving
    alice.profile.save()
    booking = book(alice, later, server="thalys", devices="0")
    local = timezone.localtime(later, timezone.get_fixed_timezone(330)).replace(tzinfo=None)

    assert ids(as_alice.get("/api/v1/bookings/", {"start": local.isoformat(), "end": (local + H).isoformat()})) == [booking.pk]
    assert ids(as_alice.get("/api/v1/bookings/", {"start": (local + H).isoformat()})) == []


def test_a_bad_filter_value_is_400_naming_it(as_alice, db):
    error = error_of(as_alice.get("/api/v1/bookings/?state=someday&start=yesterday"), 400, "invalid")

    assert set(error["fields"]) == {"state", "start"}


def test_pages_of_50_by_default(as_alice, alice, thalys, book, later):
    for n in range(55):
        book(alice, later + n * H, server="thalys", devices="0")

    body = as_alice.get("/api/v1/bookings/").json()

    assert (body["count"], len(body["results"]), body["previous"]) == (55, 50, None)
    assert body["next"].endswith("/api/v1/bookings/?page=2")
    assert len(as_alice.get(body["next"]).json()["results"]) == 5


def test_page_size_is_chosen_by_the_client(as_alice, alice, thalys, book, later):
    for n in range(3):
        book(alice, later + n * H, server="thalys", devices="0")

    body = as_alice.get("/api/v1/bookings/?page_size=2&page=2").json()

    assert (body["count"], len(body["results"])) == (3, 1)


def test_a_page_past_the_end_is_404(as_alice, db):
    error_of(as_alice.get("/api/v1/bookings/?page=9"), 404, "not_found")


def test_a_window_written_with_an_offset_postgresql_cannot_hold_is_read(as_alice, alice, thalys, later):
    booking = services.create_booking(alice, start=later, end=later + H, server="thalys", devices="0")
    start = (later - H).astimezone(timezone.get_fixed_timezone(-(20 * 60 + 22))).isoformat(timespec="minutes")  # -20:22

    body = as_alice.get("/api/v1/bookings/", {"start": start}).json()

    assert [found["id"] for found in body["results"]] == [booking.pk]
