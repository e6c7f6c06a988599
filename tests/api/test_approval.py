"""Approval through the API: pending in responses, approve/decline for staff only, 409 when there is nothing to decide."""
from datetime import timedelta

import pytest

from reservations import services
from reservations.models import Booking
from tests.factories import ServerFactory

from .conftest import H, error_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending(alice, later):
    server = ServerFactory(name="h100", gpus=4, requires_approval=True)
    return services.create_booking(alice, start=later, end=later + H, server=server, devices="0-1", purpose="big run")


def test_a_booking_made_through_the_api_is_pending(as_alice, later):
    ServerFactory(name="h100", gpus=2, requires_approval=True)
    body = as_alice.post("/api/v1/bookings/", {"server": "h100", "devices": "0", "start": later.isoformat(), "duration": "1h"}, format="json").json()
    assert (body["status"], body["state"]) == ("pending", "pending")


def test_staff_approve(as_staff, pending):
    body = as_staff.post(f"/api/v1/bookings/{pending.pk}/approve/").json()
    assert (body["status"], body["state"]) == ("confirmed", "upcoming")


def test_staff_decline_with_a_reason(as_staff, pending):
    response = as_staff.post(f"/api/v1/bookings/{pending.pk}/decline/", {"reason": "Reserved for the deadline."}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert Booking.objects.get(pk=pending.pk).decision_note == "Reserved for the deadline."


def test_members_get_a_403(as_alice, as_bob, pending):
    error = error_of(as_alice.post(f"/api/v1/bookings/{pending.pk}/approve/"), 403, "forbidden")
    assert "Only staff" in error["message"]
    error_of(as_bob.post(f"/api/v1/bookings/{pending.pk}/decline/"), 403, "forbidden")
    assert Booking.objects.get(pk=pending.pk).status == Booking.Status.PENDING


def test_deciding_what_is_not_pending_is_a_409(as_staff, pending):
    as_staff.post(f"/api/v1/bookings/{pending.pk}/approve/")
    error = error_of(as_staff.post(f"/api/v1/bookings/{pending.pk}/approve/"), 409, "not_pending")
    assert "already approved" in error["message"]
    error_of(as_staff.post(f"/api/v1/bookings/{pending.pk}/decline/"), 409, "not_pending")


def test_a_too_long_reason_is_a_400_naming_the_field(as_staff, pending):
    error = error_of(as_staff.post(f"/api/v1/bookings/{pending.pk}/decline/", {"reason": "x" * 501}, format="json"), 400, "invalid")
    assert "reason" in error["fields"]


def test_the_list_filters_pending(as_alice, pending, thalys, alice, later):
    services.create_booking(alice, start=later + 2 * H, end=later + 3 * H, server=thalys, devices="0")
    assert [b["id"] for b in as_alice.get("/api/v1/bookings/?state=pending").json()["results"]] == [pending.pk]
    assert [b["id"] for b in as_alice.get("/api/v1/bookings/?status=pending").json()["results"]] == [pending.pk]


def test_the_schema_has_approve_and_decline(as_alice):
    schema = as_alice.get("/api/schema/?format=json").json()
    for action in ("approve", "decline"):
        operation = schema["paths"][f"/api/v1/bookings/{{id}}/{action}/"]["post"]
        assert {"200", "403", "409"} <= set(operation["responses"])


def test_a_pending_booking_blocks_the_same_gpus(as_bob, pending):
    response = as_bob.post(
        "/api/v1/bookings/", {"server": "h100", "devices": "1", "start": (pending.start + timedelta(minutes=30)).isoformat(), "duration": "1h"},
        format="json",
    )
    error_of(response, 409, "conflict")


def test_availability_marks_a_pending_holder(as_bob, pending, later):
    query = {"server": "h100", "start": later.isoformat(), "end": (later + H).isoformat()}
    units = as_bob.get("/api/v1/availability/", query).json()["units"]
    busy = {unit["unit"]: unit["busy"] for unit in units}
    assert busy["h100:0"][0]["booking"] == pending.pk and busy["h100:0"][0]["pending"] is True
    assert busy["h100:2"] == []


def test_staff_decide_a_whole_series_and_members_may_not(as_staff, as_alice, alice, later):
    server = ServerFactory(name="h200", gpus=2, requires_approval=True)
    result = services.create_series(alice, start=later, end=later + H, repeat="weekly", count=2, server=server, devices="0")
    url = f"/api/v1/series/{result.series.pk}/"

    error_of(as_alice.post(url + "approve/"), 403, "forbidden")
    response = as_staff.post(url + "decline/", {"reason": "Not weekly, sorry."}, format="json")
    assert response.status_code == 200, response.content
    assert [booking["status"] for booking in response.json()["bookings"]] == ["cancelled", "cancelled"]
    assert set(Booking.objects.filter(series=result.series).values_list("decision_note", flat=True)) == {"Not weekly, sorry."}
    error = error_of(as_staff.post(url + "approve/"), 409, "not_pending")
    assert "no dates awaiting approval" in error["message"]
