"""One booking: read it, cancel (DELETE or POST), release, extend; only the holder or staff may."""
from datetime import timedelta

import pytest
from django.utils import timezone

from reservations import services
from reservations.models import Booking

from .conftest import H, error_of

pytestmark = pytest.mark.django_db


def z(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_anyone_signed_in_may_read_a_booking(as_bob, upcoming):
    assert as_bob.get(f"/api/v1/bookings/{upcoming.pk}/").json()["user"] == "alice"


def test_an_unknown_booking_is_404(as_alice, db):
    error_of(as_alice.get("/api/v1/bookings/424242/"), 404, "not_found")


def test_acting_on_an_unknown_booking_is_404(as_alice, db):
    error_of(as_alice.post("/api/v1/bookings/424242/cancel/"), 404, "not_found")


def test_delete_cancels_an_upcoming_booking(as_alice, upcoming):
    response = as_alice.delete(f"/api/v1/bookings/{upcoming.pk}/")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["state"]) == ("cancelled", "cancelled")
    assert Booking.objects.get(pk=upcoming.pk).status == Booking.Status.CANCELLED


def test_post_cancel_cancels_an_upcoming_booking(as_alice, upcoming):
    response = as_alice.post(f"/api/v1/bookings/{upcoming.pk}/cancel/")

    assert response.json()["status"] == "cancelled"
    assert not upcoming.allocations.filter(active=True).exists()


def test_someone_elses_booking_cannot_be_cancelled(as_bob, upcoming):
    error = error_of(as_bob.delete(f"/api/v1/bookings/{upcoming.pk}/"), 403, "forbidden")

    assert "belongs to alice" in error["message"]
    assert Booking.objects.get(pk=upcoming.pk).status == Booking.Status.CONFIRMED


def test_staff_may_cancel_anyones_booking(as_staff, upcoming):
    assert as_staff.post(f"/api/v1/bookings/{upcoming.pk}/cancel/").json()["status"] == "cancelled"


def test_cancelling_a_running_booking_is_409_wrong_state(as_alice, running):
    error = error_of(as_alice.post(f"/api/v1/bookings/{running.pk}/cancel/"), 409, "wrong_state")

    assert "release it" in error["message"]


def test_cancelling_twice_is_409_wrong_state(as_alice, upcoming):
    as_alice.post(f"/api/v1/bookings/{upcoming.pk}/cancel/")

    error_of(as_alice.post(f"/api/v1/bookings/{upcoming.pk}/cancel/"), 409, "wrong_state")


def test_release_ends_a_running_booking_now(as_alice, running):
    before = timezone.now()

    body = as_alice.post(f"/api/v1/bookings/{running.pk}/release/").json()

    assert (body["status"], body["state"]) == ("released", "released")
    assert before <= Booking.objects.get(pk=running.pk).end <= timezone.now()


def test_someone_elses_booking_cannot_be_released(as_bob, running):
    error_of(as_bob.post(f"/api/v1/bookings/{running.pk}/release/"), 403, "forbidden")


def test_releasing_an_upcoming_booking_is_409_wrong_state(as_alice, upcoming):
    error_of(as_alice.post(f"/api/v1/bookings/{upcoming.pk}/release/"), 409, "wrong_state")


def test_extend_by_a_duration(as_alice, upcoming):
    body = as_alice.post(f"/api/v1/bookings/{upcoming.pk}/extend/", {"duration": "1h"}).json()

    assert body["end"] == z(upcoming.end + H)


def test_extend_to_a_new_end(as_alice, upcoming):
    body = as_alice.post(f"/api/v1/bookings/{upcoming.pk}/extend/", {"end": (upcoming.end + 3 * H).isoformat()}).json()

    assert body["end"] == z(upcoming.end + 3 * H)


def test_extend_reads_a_naive_end_in_the_members_zone(as_alice, alice, upcoming):
    alice.profile.time_zone = "Asia/Kolkata"
    alice.profile.save()
    local = (upcoming.end + H).astimezone(timezone.get_fixed_timezone(330)).replace(tzinfo=None)

    body = as_alice.post(f"/api/v1/bookings/{upcoming.pk}/extend/", {"end": local.isoformat()}).json()

    assert body["end"] == z(upcoming.end + H)


def test_extend_with_a_bad_duration_is_400(as_alice, upcoming):
    error = error_of(as_alice.post(f"/api/v1/bookings/{upcoming.pk}/extend/", {"duration": "soon"}), 400, "invalid")

    assert set(error["fields"]) == {"duration"}


def test_extend_needs_a_duration_or_an_end(as_alice, upcoming):
    error_of(as_alice.post(f"/api/v1/bookings/{upcoming.pk}/extend/", {}), 400, "invalid")


def test_extend_to_an_earlier_end_is_400(as_alice, upcoming):
    error = error_of(as_alice.post(f"/api/v1/bookings/{upcoming.pk}/extend/", {"end": upcoming.start.isoformat()}), 400, "invalid")

    assert set(error["fields"]) == {"end"}


def test_extend_into_someone_elses_booking_is_409(as_alice, bob, upcoming, book):
    book(bob, upcoming.end, server="thalys", devices="2", purpose="eval run")

    error = error_of(as_alice.post(f"/api/v1/bookings/{upcoming.pk}/extend/", {"duration": "30m"}), 409, "conflict")

    assert [(c["user"], c["devices"]) for c in error["conflicts"]] == [("bob", "2")]


def test_someone_elses_booking_cannot_be_extended(as_bob, upcoming):
    error_of(as_bob.post(f"/api/v1/bookings/{upcoming.pk}/extend/", {"duration": "1h"}), 403, "forbidden")


def test_put_on_a_booking_is_405(as_alice, upcoming):
    response = as_alice.put(f"/api/v1/bookings/{upcoming.pk}/", {"purpose": "x"})

    error_of(response, 405, "method_not_allowed")
    assert "DELETE" in response["Allow"]


def test_an_ended_booking_cannot_be_extended(as_alice, alice, thalys):
    start = timezone.now() - timedelta(days=1)
    ended = services.create_booking(alice, start=start, end=start + H, server="thalys", devices="4", now=start)

    error_of(as_alice.post(f"/api/v1/bookings/{ended.pk}/extend/", {"duration": "1h"}), 409, "wrong_state")
