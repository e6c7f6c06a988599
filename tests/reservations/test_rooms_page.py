"""Rooms: the list (/rooms/) and one room's week (/rooms/<pk>/)."""
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reservations import services
from reservations.timeline import monday_of
from tests.factories import RoomFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("lab_in_utc")]
H = timedelta(hours=1)
UTC = ZoneInfo("UTC")


def week_page(client, user, room, **query):
    client.force_login(user)
    return client.get(f"/rooms/{room.pk}/", query)


def blocks(response):
    return {day.day.weekday(): [f"{b.time} {b.who} · {b.purpose}" for b in day.blocks] for day in response.context["week"].days if day.blocks}


def test_rooms_need_a_login(client, room):
    assert client.get("/rooms/").status_code == 302
    assert client.get(f"/rooms/{room.pk}/").status_code == 302


def test_room_list_shows_active_rooms_with_capacity_location_and_a_link_to_their_week(client, alice, room):
    RoomFactory(name="Seminar room", capacity=12, location="Building 2, room 2.14")
    RoomFactory(name="Old lab", active=False)
    client.force_login(alice)

    page = client.get("/rooms/").content.decode()

    assert "Lab 2" in page and "Seminar room" in page and "Old lab" not in page
    assert "12 seats" in page and "Building 2, room 2.14" in page
    assert f'href="/rooms/{room.pk}/"' in page
    assert 'href="/book/?room=Lab%202"' in page


def test_room_list_says_who_holds_a_room_now_and_who_is_next(client, alice, bob, room):
    now = timezone.now()
    services.create_booking(bob, start=now - H, end=now + H, room=room, purpose="robot arm calibration", now=now - H)
    services.create_booking(alice, start=now + 3 * H, end=now + 4 * H, room=room, purpose="student demo")
    client.force_login(bob)

    response = client.get("/rooms/")

    (status,) = response.context["rooms"]
    assert status.current.booking.purpose == "robot arm calibration"
    assert status.next.booking.purpose == "student demo"
    page = response.content.decode()
    assert '<span class="mine-tag">yours</span>' in page and "Alice Liddell" in page


def test_room_list_query_count_does_not_grow_with_rooms(client, alice, room):
    client.force_login(alice)
    client.get("/rooms/")
    with CaptureQueriesContext(connection) as few:
        client.get("/rooms/")
    now = timezone.now()
    for n in range(4):
        services.create_booking(UserFactory(), start=now + (n + 1) * H, end=now + (n + 2) * H, room=RoomFactory())
    with CaptureQueriesContext(connection) as many:
        client.get("/rooms/")
    assert len(many) == len(few)


def test_room_week_shows_a_booking_as_a_block_on_its_day(client, alice, bob, room, book, monday):
    book(alice, monday + 2 * 24 * H + 10 * H, hours=2, room=room, purpose="group meeting")  # Wednesday 10:00-12:00

    response = week_page(client, bob, room, week=monday.date().isoformat())

    assert blocks(response) == {2: ["10:00–12:00 Alice Liddell · group meeting"]}
    block = response.context["week"].days[2].blocks[0]
    assert (block.top, block.height) == ("21.4286", "14.2857")  # 07:00-21:00 shown: 3 h down, 2 h long
    assert "Alice Liddell" in response.content.decode()


def test_room_week_marks_own_bookings(client, alice, bob, room, book, monday):
    book(alice, monday + 10 * H, room=room, purpose="mine")
    book(bob, monday + 12 * H, room=room, purpose="theirs")

    response = week_page(client, alice, room, week=monday.date().isoformat())

    assert blocks(response) == {0: ["10:00–11:00 ★ Alice Liddell · mine", "12:00–13:00 bob · theirs"]}
    assert response.content.decode().count('class="rw-block mine"') == 1


def test_room_week_splits_a_booking_over_midnight_and_widens_the_hours(client, alice, room, book, monday):
    book(alice, monday + 22 * H, hours=4, room=room, purpose="night experiment")  # Monday 22:00 to Tuesday 02:00

    response = week_page(client, alice, room, week=monday.date().isoformat())

    week = response.context["week"]
    assert (week.first_hour, week.last_hour) == (0, 24)
    assert blocks(response) == {0: ["22:00–24:00 ★ Alice Liddell · night experiment"], 1: ["00:00–02:00 ★ Alice Liddell · night experiment"]}


def test_room_week_starts_on_monday_with_seven_days_and_navigation(client, alice, room, monday):
    thursday = monday.date() + timedelta(days=3)

    response = week_page(client, alice, room, week=thursday.isoformat())

    days = [day.day for day in response.context["week"].days]
    assert days == [monday.date() + timedelta(days=n) for n in range(7)]
    assert response.context["previous_url"] == f"/rooms/{room.pk}/?week={monday.date() - timedelta(days=7)}"
    assert response.context["next_url"] == f"/rooms/{room.pk}/?week={monday.date() + timedelta(days=7)}"


def test_a_free_hour_links_to_the_booking_form_for_one_hour_and_a_booked_one_does_not(client, alice, room, book, monday):
    book(alice, monday + 10 * H, room=room)

    day = week_page(client, alice, room, week=monday.date().isoformat()).context["week"].days[0]

    slots = {slot.label: slot.url for slot in day.slots}
    assert slots["10:00"] == ""
    link = urlsplit(slots["11:00"])
    assert link.path == "/book/"
    assert parse_qs(link.query) == {"room": ["Lab 2"], "start": [f"{monday:%Y-%m-%d}T11:00"], "end": [f"{monday:%Y-%m-%d}T12:00"]}


def test_hours_that_have_begun_are_not_offered(client, alice, room):
    response = week_page(client, alice, room)

    now = timezone.now()
    for day in response.context["week"].days:
        for slot in day.slots:
            if slot.url:
                start = datetime.strptime(parse_qs(urlsplit(slot.url).query)["start"][0], "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
                assert start >= now


def test_unknown_room_is_not_found(client, alice):
    client.force_login(alice)

    assert client.get("/rooms/999999/").status_code == 404


def test_inactive_room_is_not_found(client, alice):
    room = RoomFactory(name="Old lab", active=False)
    client.force_login(alice)

    assert client.get(f"/rooms/{room.pk}/").status_code == 404


@pytest.mark.parametrize("bad", ["garbage", "2031-13-01", "0001-01-01", "9999-12-31"])
def test_a_week_that_cannot_be_read_shows_this_week_with_a_note(client, alice, room, bad):
    response = week_page(client, alice, room, week=bad)

    assert response.status_code == 200
    assert response.context["week"].window.first_day == monday_of(timezone.localdate())
    assert "is not a date this page can show" in response.content.decode()


def test_room_week_is_in_the_members_time_zone(client, alice, bob, room, book, monday):
    alice.profile.time_zone = "Asia/Tokyo"
    alice.profile.save()
    book(bob, monday + 2 * 24 * H + 1 * H, room=room, purpose="call with Tokyo")  # Wednesday 01:00 UTC = 10:00 JST

    response = week_page(client, alice, room, week=monday.date().isoformat())

    assert blocks(response) == {2: ["10:00–11:00 bob · call with Tokyo"]}
