"""POST bookings/: every way to name what is booked and when, and every refusal."""
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from reservations.models import Booking

from ..factories import ServerFactory
from .conftest import H, error_of

pytestmark = pytest.mark.django_db


def create(client, **payload):
    return client.post("/api/v1/bookings/", payload, format="json")


def z(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_book_gpus_by_device_set(as_alice, thalys, later):
    response = create(as_alice, server="thalys", devices="0-1", start=later.isoformat(), end=(later + 2 * H).isoformat(), purpose="resnet")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["user"], body["devices"], body["purpose"], body["source"]) == ("alice", "0-1", "resnet", "api")
    assert (body["start"], body["end"]) == (z(later), z(later + 2 * H))
    assert Booking.objects.get(pk=body["id"]).allocations.count() == 2


def test_book_gpus_by_device_ids(as_alice, thalys, later):
    wanted = list(thalys.devices.filter(index__in=[3, 5]).values_list("pk", flat=True))

    body = create(as_alice, server="thalys", devices=wanted, start=later.isoformat(), duration="1h").json()

    assert (body["devices"], body["device_ids"]) == ("3,5", sorted(wanted))


def test_device_ids_on_another_server_are_400(as_alice, thalys, later):
    other = ServerFactory(name="atlas", gpus=1).devices.get()

    error = error_of(create(as_alice, server="thalys", devices=[other.pk], start=later.isoformat(), duration="1h"), 400, "invalid")

    assert error["fields"]["devices"] == [f"Device id {other.pk} is not a GPU of thalys (it has 8 GPUs); see devices/?server=thalys."]


def test_devices_of_the_wrong_type_are_400(as_alice, thalys, later):
    error = error_of(create(as_alice, server="thalys", devices={"index": 1}, start=later.isoformat(), duration="1h"), 400, "invalid")

    assert "devices" in error["fields"]


def test_book_a_whole_server(as_alice, thalys, later):
    body = create(as_alice, server="thalys", start=later.isoformat(), duration="1h").json()

    assert (body["whole_server"], body["what"]) == (True, "thalys (whole server)")
    assert Booking.objects.get(pk=body["id"]).allocations.count() == 9


def test_book_a_server_by_id(as_alice, thalys, later):
    body = create(as_alice, server=thalys.pk, devices="0", start=later.isoformat(), duration="1h").json()

    assert body["what"] == "thalys:0"


def test_book_a_room(as_alice, room, later):
    body = create(as_alice, room="lab 2", start=later.isoformat(), duration="90m").json()

    assert (body["room"], body["end"]) == ("Lab 2", z(later + 1.5 * H))


def test_book_a_room_by_id(as_alice, room, later):
    assert create(as_alice, room=room.pk, start=later.isoformat(), duration="1h").json()["room"] == "Lab 2"


def test_duration_sets_the_end(as_alice, thalys, later):
    body = create(as_alice, server="thalys", devices="0", start=later.isoformat(), duration="1h30m").json()

    assert body["end"] == z(later + 1.5 * H)


def test_a_naive_start_is_read_in_the_members_zone(as_alice, alice, thalys, later):
    alice.profile.time_zone = "America/New_York"
    alice.profile.save()
    local = later.astimezone(ZoneInfo("America/New_York")).replace(tzinfo=None)

    body = create(as_alice, server="thalys", devices="0", start=local.isoformat(), duration="1h").json()

    assert body["start"] == z(later)


def test_a_naive_start_is_read_in_the_labs_zone_without_a_profile_zone(as_alice, settings, thalys, later):
    settings.TIME_ZONE = "Asia/Kolkata"
    local = later.astimezone(timezone.get_fixed_timezone(330)).replace(tzinfo=None)

    body = create(as_alice, server="thalys", devices="0", start=local.isoformat(), duration="1h").json()

    assert body["start"] == z(later)


def test_an_offset_in_the_start_wins_over_the_members_zone(as_alice, alice, thalys, later):
    alice.profile.time_zone = "Asia/Tokyo"
    alice.profile.save()

    body = create(as_alice, server="thalys", devices="0", start=later.isoformat(), duration="1h").json()

    assert body["start"] == z(later)


def test_source_cli_is_recorded(as_alice, thalys, later):
    body = create(as_alice, server="thalys", devices="0", start=later.isoformat(), duration="1h", source="cli").json()

    assert body["source"] == "cli"
    assert Booking.objects.get(pk=body["id"]).source == Booking.Source.CLI


def test_a_source_other_than_api_or_cli_is_400(as_alice, thalys, later):
    error = error_of(create(as_alice, server="thalys", devices="0", start=later.isoformat(), duration="1h", source="admin"), 400, "invalid")

    assert "source" in error["fields"]


def test_a_bad_duration_is_400_on_duration(as_alice, thalys, later):
    error = error_of(create(as_alice, server="thalys", devices="0", start=later.isoformat(), duration="2x"), 400, "invalid")

    assert error["fields"] == {"duration": ["'2x' is not a duration; use e.g. 30m, 2h, 1h30m or 1d."]}
    assert error["message"] == "'2x' is not a duration; use e.g. 30m, 2h, 1h30m or 1d."


def test_a_device_the_server_lacks_is_400_on_devices(as_alice, thalys, later):
    error = error_of(create(as_alice, server="thalys", devices="9", start=later.isoformat(), duration="1h"), 400, "invalid")

    assert error["fields"] == {"devices": ["Device 9 does not exist on thalys (it has 0-7)."]}


def test_a_bad_device_set_is_400_on_devices(as_alice, thalys, later):
    error = error_of(create(as_alice, server="thalys", devices="3-1", start=later.isoformat(), duration="1h"), 400, "invalid")

    assert "backwards" in error["fields"]["devices"][0]


def test_an_unknown_server_is_400_on_server(as_alice, thalys, later):
    error = error_of(create(as_alice, server="nowhere", devices="0", start=later.isoformat(), duration="1h"), 400, "invalid")

    assert error["fields"] == {"server": ["There is no server 'nowhere'; servers: thalys."]}


def test_an_unknown_server_with_device_ids_is_400_on_server(as_alice, thalys, later):
    error = error_of(create(as_alice, server="nowhere", devices=[1], start=later.isoformat(), duration="1h"), 400, "invalid")

    assert set(error["fields"]) == {"server"}


def test_both_server_and_room_is_400(as_alice, thalys, room, later):
    error = error_of(create(as_alice, server="thalys", room="Lab 2", start=later.isoformat(), duration="1h"), 400, "invalid")

    assert error["fields"]["server"] == ["Book either a server (with or without GPUs) or a room, not both and not neither."]


def test_neither_server_nor_room_is_400(as_alice, thalys, later):
    error_of(create(as_alice, start=later.isoformat(), duration="1h"), 400, "invalid")


def test_devices_with_a_room_are_400(as_alice, room, later):
    error = error_of(create(as_alice, room="Lab 2", devices="0", start=later.isoformat(), duration="1h"), 400, "invalid")

    assert set(error["fields"]) == {"devices"}


def test_a_start_in_the_past_is_400_on_start(as_alice, thalys):
    start = timezone.now() - timedelta(hours=2)

    error = error_of(create(as_alice, server="thalys", devices="0", start=start.isoformat(), duration="1h"), 400, "invalid")

    assert error["fields"] == {"start": ["The start is in the past; book from now on."]}


def test_an_end_before_the_start_is_400_on_end(as_alice, thalys, later):
    error = error_of(create(as_alice, server="thalys", devices="0", start=later.isoformat(), end=(later - H).isoformat()), 400, "invalid")

    assert error["fields"] == {"end": ["The end must be after the start."]}


def test_end_and_duration_together_are_400(as_alice, thalys, later):
    response = create(as_alice, server="thalys", devices="0", start=later.isoformat(), end=(later + H).isoformat(), duration="1h")

    assert set(error_of(response, 400, "invalid")["fields"]) == {"end"}


def test_a_missing_start_is_400(as_alice, thalys):
    error = error_of(create(as_alice, server="thalys", duration="1h"), 400, "invalid")

    assert error["fields"] == {"start": ["This field is required."]}


def test_a_start_that_is_not_a_time_is_400(as_alice, thalys):
    assert "start" in error_of(create(as_alice, server="thalys", start="tomorrow", duration="1h"), 400, "invalid")["fields"]


def test_a_time_beyond_the_year_2999_is_400(as_alice, thalys):
    response = create(as_alice, server="thalys", start="9999-12-31T23:59:59-12:00", duration="3650d")

    assert error_of(response, 400, "invalid")["fields"]["start"]


def test_a_booking_too_long_is_400(as_alice, thalys, later):
    error = error_of(create(as_alice, server="thalys", devices="0", start=later.isoformat(), duration="15d"), 400, "invalid")

    assert "at most 14d" in error["fields"]["end"][0]


def test_an_overlap_is_409_naming_the_holder(as_bob, alice, thalys, book, later):
    held = book(alice, later, hours=2, server="thalys", devices="1-2", purpose="training resnet")

    response = create(as_bob, server="thalys", devices="2-3", start=(later + H).isoformat(), duration="2h")

    error = error_of(response, 409, "conflict")
    [conflict] = error["conflicts"]
    assert conflict == {
        "booking": held.pk,
        "user": "alice",
        "server": "thalys",
        "devices": "2",
        "whole_server": False,
        "room": None,
        "start": z(later),
        "end": z(later + 2 * H),
        "purpose": "training resnet",
        "message": conflict["message"],
    }
    assert conflict["message"].startswith("GPU 2 on thalys is booked by Alice Liddell from")
    assert error["message"] == conflict["message"] + "."
    assert Booking.objects.filter(user__username="bob").count() == 0


def test_a_whole_server_overlapping_a_gpu_booking_is_409(as_bob, alice, thalys, book, later):
    book(alice, later, server="thalys", devices="5")

    error = error_of(create(as_bob, server="thalys", start=later.isoformat(), duration="1h"), 409, "conflict")

    assert [c["devices"] for c in error["conflicts"]] == ["5"]


def test_malformed_json_is_400(as_alice, db):
    response = as_alice.generic("POST", "/api/v1/bookings/", "{not json", content_type="application/json")

    error_of(response, 400, "invalid")


def test_a_form_post_is_415(as_alice, db):
    response = as_alice.post("/api/v1/bookings/", {"server": "thalys"}, format="multipart")

    error_of(response, 415, "invalid")
