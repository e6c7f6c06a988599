"""POST/GET/DELETE series/: recurring bookings through the API (201, 409 listing the refused dates, 400, 403)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from reservations import services
from reservations.models import Booking, BookingSeries

from .conftest import H

pytestmark = pytest.mark.django_db


def create(client, **payload):
    return client.post("/api/v1/series/", payload, format="json")


def z(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def start():
    """A whole hour three days ahead (UTC: the lab's zone in tests)."""
    return (timezone.now() + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)


def test_a_weekly_series_is_201_with_its_bookings(as_alice, thalys, start):
    response = create(
        as_alice, server="thalys", devices="0-1", start=start.isoformat(), duration="1h", repeat="weekly",
        until=(start + timedelta(weeks=2)).date().isoformat(), purpose="reading group",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["rule"] == "FREQ=WEEKLY" and body["length"] == "1h" and body["user"] == "alice"
    assert [b["start"] for b in body["bookings"]] == [z(start + timedelta(weeks=n)) for n in range(3)]
    assert {b["series"] for b in body["bookings"]} == {body["id"]}
    assert {b["devices"] for b in body["bookings"]} == {"0-1"}
    assert body["skipped"] == []


def test_an_rrule_with_count(as_alice, thalys, start):
    body = create(as_alice, server="thalys", devices="0", start=start.isoformat(), duration="1h", rrule="FREQ=DAILY;COUNT=3").json()
    assert body["rule"] == "FREQ=DAILY;COUNT=3" and len(body["bookings"]) == 3


def test_taken_dates_are_409_listing_each_and_nothing_is_booked(as_alice, bob, thalys, start):
    services.create_booking(bob, start=start + timedelta(weeks=1), end=start + timedelta(weeks=1) + H, server="thalys", devices="0", purpose="bob's run")

    response = create(as_alice, server="thalys", devices="0", start=start.isoformat(), duration="1h", repeat="weekly", count=3)

    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert (error["code"], error["total"], error["bookable"]) == ("series_conflict", 3, 2)
    [refused] = error["refused"]
    assert refused["start"] == z(start + timedelta(weeks=1)) and refused["code"] == "conflict"
    assert refused["conflicts"][0]["user"] == "bob" and refused["conflicts"][0]["purpose"] == "bob's run"
    assert not BookingSeries.objects.exists() and Booking.objects.filter(user__username="alice").count() == 0


def test_skip_books_the_others_and_lists_the_skipped(as_alice, bob, thalys, start):
    services.create_booking(bob, start=start + timedelta(weeks=1), end=start + timedelta(weeks=1) + H, server="thalys", devices="0")

    response = create(as_alice, server="thalys", devices="0", start=start.isoformat(), duration="1h", repeat="weekly", count=3, on_conflict="skip")

    assert response.status_code == 201, response.content
    body = response.json()
    assert len(body["bookings"]) == 2 and [s["start"] for s in body["skipped"]] == [z(start + timedelta(weeks=1))]


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"repeat": "sometimes", "count": 2}, "repeat"),
        ({"rrule": "FREQ=MINUTELY", "count": 2}, "rrule"),
        ({"count": 2}, "repeat"),
        ({"repeat": "weekly"}, "until"),
        ({"repeat": "daily", "count": 101}, "until"),
        ({"repeat": "weekly", "count": 2, "on_conflict": "maybe"}, "on_conflict"),
        ({"repeat": "weekly", "until": "next week"}, "until"),
    ],
)
def test_bad_rules_are_400_naming_the_field(as_alice, thalys, start, payload, field):
    response = create(as_alice, server="thalys", devices="0", start=start.isoformat(), duration="1h", **payload)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["fields"], error
    assert not Booking.objects.exists()


def test_get_shows_the_series_with_its_dates(as_bob, alice, thalys, start):
    result = services.create_series(alice, start=start, end=start + H, repeat="weekly", count=2, server="thalys", devices="0")
    body = as_bob.get(f"/api/v1/series/{result.series.pk}/").json()
    assert body["id"] == result.series.pk and len(body["bookings"]) == 2 and "skipped" not in body
    assert body["description"].startswith("every week on ")


def test_delete_cancels_the_rest_owner_or_staff_only(as_alice, as_bob, as_staff, alice, thalys, start):
    result = services.create_series(alice, start=start, end=start + H, repeat="weekly", count=2, server="thalys", devices="0")
    url = f"/api/v1/series/{result.series.pk}/"

    refused = as_bob.delete(url)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"

    response = as_staff.delete(url)
    assert response.status_code == 200
    assert {b["status"] for b in response.json()["bookings"]} == {"cancelled"}
    again = as_alice.delete(url)
    assert again.status_code == 409 and again.json()["error"]["code"] == "wrong_state" and "nothing left to cancel" in again.json()["error"]["message"]


def test_unknown_series_is_404(as_alice):
    assert as_alice.get("/api/v1/series/999999/").status_code == 404
    assert as_alice.delete("/api/v1/series/999999/").status_code == 404


def test_the_schema_documents_series(as_alice):
    schema = as_alice.get("/api/schema/?format=json").json()
    post = schema["paths"]["/api/v1/series/"]["post"]["responses"]
    assert {"201", "400", "409"} <= set(post)
    assert {"get", "delete"} <= set(schema["paths"]["/api/v1/series/{id}/"])
