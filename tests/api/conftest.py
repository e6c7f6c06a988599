"""API fixtures: clients that send a member's token, an error-shape check, and a check against the schema."""
from datetime import timedelta
from functools import cache

import pytest
import requests
import schemathesis
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
    assert set(error) <= {"code", "message", "fields", "limit", "conflicts"}
    return error


@cache
def served_schema():
    """The schema /api/schema/ serves, as schemathesis reads it (built once per run)."""
    from drf_spectacular.generators import SchemaGenerator

    return schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))


def conforms(method, path, response):
    """Raise unless the answer is what the schema documents for the operation and the status (schemathesis checks it)."""
    answer = schemathesis.Response(
        status_code=response.status_code,
        headers={name: [value] for name, value in response.headers.items()},
        content=response.content,
        request=requests.Request(method, f"http://testserver{path}").prepare(),
        elapsed=0.0,
        verify=False,
    )
    served_schema()[path][method].validate_response(answer)
    return response
