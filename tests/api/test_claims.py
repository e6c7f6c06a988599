"""POST claims/: GPUs or a whole server from now on, for a duration."""
from datetime import timedelta

import pytest
from django.utils import timezone

from reservations.models import Booking

from .conftest import error_of

pytestmark = pytest.mark.django_db


def claim(client, **payload):
    return client.post("/api/v1/claims/", payload, format="json")


def test_a_claim_books_gpus_from_now(as_alice, thalys):
    before = timezone.now()

    response = claim(as_alice, server="thalys", devices="2-3", duration="2h", purpose="debugging", source="cli")

    assert response.status_code == 201, response.content
    body = response.json()
    booking = Booking.objects.get(pk=body["id"])
    assert before <= booking.start <= timezone.now()
    assert booking.end - booking.start == timedelta(hours=2)
    assert (body["devices"], body["state"], body["source"], body["purpose"]) == ("2-3", "running", "cli", "debugging")


def test_a_claim_without_devices_takes_the_whole_server(as_alice, thalys):
    assert claim(as_alice, server="thalys", duration="30m").json()["whole_server"] is True


def test_a_claim_of_held_gpus_is_409(as_bob, alice, running):
    error = error_of(claim(as_bob, server="thalys", devices="0", duration="1h"), 409, "conflict")

    assert error["conflicts"][0]["user"] == "alice"


def test_a_claim_needs_a_duration(as_alice, thalys):
    assert set(error_of(claim(as_alice, server="thalys"), 400, "invalid")["fields"]) == {"duration"}


def test_a_claim_needs_a_server(as_alice, thalys):
    assert set(error_of(claim(as_alice, duration="1h"), 400, "invalid")["fields"]) == {"server"}
