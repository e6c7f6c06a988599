"""Whatever goes wrong under /api/, the answer has the one error shape."""
import pytest

from .conftest import conforms, error_of

pytestmark = pytest.mark.django_db


def test_an_unknown_api_path_is_404_in_the_error_shape(as_alice):
    error = error_of(as_alice.get("/api/v1/nothing-here/"), 404, "not_found")

    assert "/api/v1/nothing-here/" in error["message"]


def test_a_path_without_its_slash_gets_a_hint_not_a_redirect(as_alice):
    error = error_of(as_alice.post("/api/v1/claims", {"server": "thalys"}), 404, "not_found")

    assert "Did you mean /api/v1/claims/" in error["message"]


def test_unknown_paths_outside_v1_are_404_too(anon):
    error_of(anon.get("/api/v2/bookings/"), 404, "not_found")


def test_a_method_the_path_lacks_is_405(as_alice):
    error_of(as_alice.delete("/api/v1/me/"), 405, "method_not_allowed")


def test_the_pages_outside_the_api_keep_their_own_404(client, alice):
    client.force_login(alice)

    assert client.get("/no-such-page/").status_code == 404
    assert client.get("/no-such-page/")["Content-Type"].startswith("text/html")


def test_the_browsable_api_renders_for_a_browser(alice, thalys):
    from django.test import Client

    client = Client()
    client.force_login(alice)

    response = client.get("/api/v1/bookings/", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert b"Bookings" in response.content


def test_every_domain_error_the_handler_maps_has_its_code_in_the_schema():
    from reservations import errors  # every BookingError subclass is defined there
    from reservations.api.errors import CODES
    from reservations.api.serializers import REFUSAL_CODES

    def subclasses(cls):
        return {cls} | {found for sub in cls.__subclasses__() for found in subclasses(sub)}

    codes = {cls.code for cls in subclasses(errors.BookingError)}

    assert codes - {"capacity_exceeded"} <= set(CODES)  # a CapacityExceeded is answered 400 invalid, on its field
    assert {"limit_exceeded", "not_allowed_here", "wrong_state", "too_large", "uri_too_long", "throttled"} <= set(CODES)
    assert codes - {"busy", "forbidden", "not_pending", "wrong_state", "series_conflict"} <= set(REFUSAL_CODES)


def test_each_domain_error_is_answered_with_the_status_its_class_declares(clock):
    from types import SimpleNamespace

    from reservations import errors
    from reservations.api.errors import exception_handler

    rule = SimpleNamespace(kind="max_gpus", source="Students", limit=SimpleNamespace(describe=lambda: "at most 1 GPU at once"))
    refusal = errors.Refusal(clock, clock, errors.BookingError("taken"))
    answers = {  # the API's contract: (status, code) for each
        errors.BookingError("bad", field="start"): (400, "invalid"),
        errors.NotAllowed("no"): (403, "forbidden"),
        errors.NotPending("no"): (409, "not_pending"),
        errors.WrongState("no"): (409, "wrong_state"),
        errors.Busy("later"): (503, "busy"),
        errors.LimitExceeded("over", rule=rule): (409, "limit_exceeded"),
        errors.AccessDenied("not here", rule=rule): (403, "not_allowed_here"),
        errors.CapacityExceeded("full", field="cpu_cores"): (400, "invalid"),
        errors.OfferUnavailable("gone"): (409, "conflict"),
        errors.BookingConflict([]): (409, "conflict"),
        errors.SeriesConflict([refusal], total=2): (409, "series_conflict"),
    }

    def subclasses(cls):
        return {cls} | {found for sub in cls.__subclasses__() for found in subclasses(sub)}

    assert {type(error) for error in answers} == subclasses(errors.BookingError)
    for error, (status, code) in answers.items():
        response = exception_handler(error, {})
        assert (response.status_code, response.data["error"]["code"]) == (status, code), type(error).__name__
        assert error.http_status == status and (status == 400 or error.code == code), type(error).__name__


def test_over_a_fair_use_limit_is_409_limit_exceeded_with_the_limit_as_the_schema_says(as_alice, alice, thalys, later):
    from reservations.models import Limit

    Limit.objects.create(user=alice, kind=Limit.Kind.MAX_GPUS, number=1)

    response = conforms("POST", "/api/v1/bookings/", as_alice.post("/api/v1/bookings/", {"server": "thalys", "devices": "0-1", "start": later.isoformat(), "duration": "1h"}))

    error = error_of(response, 409, "limit_exceeded")
    assert error["limit"] == {"kind": "max_gpus", "source": "You (personal limit)", "says": "at most 1 GPU at once"}


def test_a_server_the_group_may_not_book_is_403_not_allowed_here_as_the_schema_says(as_alice, alice, thalys, later):
    from reservations.models import Limit

    Limit.objects.create(user=alice, kind=Limit.Kind.ACCESS, allowed=False, server=thalys)

    response = conforms("POST", "/api/v1/claims/", as_alice.post("/api/v1/claims/", {"server": "thalys", "devices": "0", "duration": "1h"}))

    error = error_of(response, 403, "not_allowed_here")
    assert error["limit"]["kind"] == "access"


def test_cancelling_an_ended_booking_is_409_wrong_state_as_the_schema_says(as_alice, alice, thalys, clock):
    from datetime import timedelta

    from reservations import services

    start = clock - timedelta(hours=3)
    ended = services.create_booking(alice, start=start, end=start + timedelta(hours=1), server="thalys", devices="0", now=start)

    for method, path in (("DELETE", "/api/v1/bookings/{id}/"), ("POST", "/api/v1/bookings/{id}/cancel/"), ("POST", "/api/v1/bookings/{id}/release/")):
        response = as_alice.generic(method, path.format(id=ended.pk))
        error = error_of(conforms(method, path, response), 409, "wrong_state")
        assert error["message"] == f"Booking #{ended.pk} has already ended."
