"""API fixtures: clients that send a member's token, and an error-shape check."""
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from reservations import services
from reservations.models import ApiToken

H = timedelta(hours=1)


def pytest_configure(config):
    config.addinivalue_line("markers", "schemathesis: property-based tests of the API generated from its schema (live server)")


def token_client(user, name="test"):
    _, key = ApiToken.issue(user, name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.key = key
    return client


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def as_alice(alice):
    return token_client(alice)


@pytest.fixture
def as_bob(bob):
    return token_client(bob)


@pytest.fixture
def as_staff(staff):
    return token_client(staff)


@pytest.fixture
def running(alice, thalys):
    """alice holds thalys:0 from a minute ago for two hours."""
    now = timezone.now()
    start = now - timedelta(minutes=1)
    return services.create_booking(alice, start=start, end=start + 2 * H, server="thalys", devices="0", purpose="training", now=now)


@pytest.fixture
def upcoming(alice, thalys, later):
    """alice holds thalys:1-2 tomorrow for an hour."""
    return services.create_booking(alice, start=later, end=later + H, server="thalys", devices="1-2", purpose="eval")


def error_of(response, status, code):
    """The error body of a response, after checking its status and the one error shape."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "fields", "conflicts"}
    return error
