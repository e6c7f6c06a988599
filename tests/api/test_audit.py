"""GET /api/v1/bookings/{id}/history/: the booking's audit entries, newest first, for its owner and staff."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reservations import services
from reservations.api.times import utc_iso
from reservations.models import BookingAuditEntry

from .conftest import conforms, error_of, token_client

pytestmark = pytest.mark.django_db
SCHEMA_PATH = "/api/v1/bookings/{id}/history/"


def history_url(booking_or_id):
    return f"/api/v1/bookings/{getattr(booking_or_id, 'pk', booking_or_id)}/history/"


def test_the_owner_reads_who_did_what_newest_first(as_alice, as_staff, upcoming, later):
    as_staff.post(f"/api/v1/bookings/{upcoming.pk}/cancel/")

    response = conforms("GET", SCHEMA_PATH, as_alice.get(history_url(upcoming)))

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    cancelled, created = body["results"]
    assert {key: cancelled[key] for key in ("action", "actor", "actor_name", "surface", "changes", "note", "series")} == {
        "action": "cancelled", "actor": "stella", "actor_name": "stella", "surface": "api",
        "changes": {"status": ["confirmed", "cancelled"]}, "note": "", "series": None,
    }
    assert (created["action"], created["actor"], created["surface"]) == ("created", "alice", "web")
    assert created["changes"]["start"] == [None, utc_iso(later)]


def test_times_in_changes_are_utc_like_the_rest_of_the_api(as_alice, upcoming, later):
    as_alice.post(f"/api/v1/bookings/{upcoming.pk}/extend/", {"duration": "1h"})

    extended = as_alice.get(history_url(upcoming)).json()["results"][0]
    booking = as_alice.get(f"/api/v1/bookings/{upcoming.pk}/").json()

    assert extended["action"] == "extended"
    assert extended["changes"]["end"][1] == booking["end"]


def test_staff_read_anyones_history(as_staff, upcoming):
    response = as_staff.get(history_url(upcoming))

    assert response.status_code == 200
    assert [entry["action"] for entry in response.json()["results"]] == ["created"]


def test_another_member_is_refused_as_for_a_change(as_bob, upcoming):
    history = error_of(conforms("GET", SCHEMA_PATH, as_bob.get(history_url(upcoming))), 403, "forbidden")
    cancel = error_of(as_bob.post(f"/api/v1/bookings/{upcoming.pk}/cancel/"), 403, "forbidden")

    assert "only they or staff" in history["message"] and "only they or staff" in cancel["message"]
    assert BookingAuditEntry.objects.filter(booking=upcoming).count() == 1  # the refused cancel wrote nothing


def test_an_unknown_booking_is_404(as_alice, db):
    error_of(conforms("GET", SCHEMA_PATH, as_alice.get(history_url(999999))), 404, "not_found")


def test_the_labres_client_is_the_command_line(alice, upcoming):
    cli = token_client(alice)
    cli.credentials(HTTP_AUTHORIZATION=f"Token {cli.key}", HTTP_USER_AGENT="labres-cli/1")

    cli.post(f"/api/v1/bookings/{upcoming.pk}/cancel/")

    assert cli.get(history_url(upcoming)).json()["results"][0]["surface"] == "cli"


def test_history_is_paginated_in_a_fixed_number_of_queries(as_alice, alice, upcoming, clock):
    BookingAuditEntry.objects.bulk_create(
        BookingAuditEntry(booking=upcoming, action="changed", actor=alice, surface="web", at=clock + timedelta(minutes=n), changes={"purpose": [str(n), str(n + 1)]})
        for n in range(30)
    )

    as_alice.get("/api/v1/me/")  # the token's use is recorded at most once a minute: not in what is counted
    with CaptureQueriesContext(connection) as queries:
        response = as_alice.get(history_url(upcoming), {"page_size": 10})

    body = response.json()
    assert (body["count"], len(body["results"])) == (31, 10)
    assert body["results"][0]["changes"] == {"purpose": ["29", "30"]}
    assert body["next"] is not None
    small = len(queries)
    with CaptureQueriesContext(connection) as queries:
        as_alice.get(history_url(upcoming), {"page_size": 30})
    assert len(queries) == small


def test_a_series_date_names_its_series(as_alice, alice, thalys, later):
    result = services.create_series(alice, start=later, end=later + timedelta(hours=1), repeat="daily", count=2, server=thalys, devices="0")

    entry = as_alice.get(history_url(result.bookings[0])).json()["results"][0]

    assert entry["series"] == result.series.pk


def test_the_schema_documents_the_history_with_an_example(as_alice):
    schema = as_alice.get("/api/schema/?format=json").json()
    operation = schema["paths"][SCHEMA_PATH]["get"]

    assert {"200", "403", "404"} <= set(operation["responses"])
    example = operation["responses"]["200"]["content"]["application/json"]["examples"]
    assert next(iter(example.values()))["value"]["results"][0]["action"] == "cancelled"
