import pytest

from .conftest import error_of

pytestmark = pytest.mark.django_db


def test_a_member_over_the_rate_gets_429_with_retry_after(as_alice, settings):
    settings.API_THROTTLE_USER = "2/minute"
    as_alice.get("/api/v1/me/")
    as_alice.get("/api/v1/me/")

    response = as_alice.get("/api/v1/me/")

    error = error_of(response, 429, "throttled")
    assert 0 < int(response["Retry-After"]) <= 60
    assert "try again" in error["message"]


def test_an_empty_rate_turns_the_limit_off(as_alice, settings):
    settings.API_THROTTLE_USER = ""

    assert all(as_alice.get("/api/v1/me/").status_code == 200 for _ in range(5))


def test_token_requests_are_throttled_harder(anon, alice, settings):
    settings.API_THROTTLE_TOKEN = "3/minute"
    for _ in range(3):
        anon.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"})

    response = anon.post("/api/v1/auth/token/", {"username": "alice", "password": "correct horse battery staple"})

    error_of(response, 429, "throttled")


def test_token_requests_default_to_10_a_minute(anon, alice):
    # Other names each time: one account is refused sooner (LOGIN_ATTEMPTS_LIMIT, tests/test_signin.py).
    codes = [anon.post("/api/v1/auth/token/", {"username": f"user{n}", "password": "wrong"}).status_code for n in range(11)]

    assert codes == [400] * 10 + [429]


def test_anonymous_clients_are_throttled(anon, db, settings):
    settings.API_THROTTLE_ANON = "1/minute"
    anon.post("/api/v1/auth/token/", {})

    error_of(anon.post("/api/v1/auth/token/", {}), 429, "throttled")
