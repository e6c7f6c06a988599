from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from reservations.models import ApiToken

from .conftest import error_of, token_client

pytestmark = pytest.mark.django_db


def test_a_token_signs_the_request_in(alice):
    response = token_client(alice).get("/api/v1/me/")

    assert response.status_code == 200
    assert response.json()["username"] == "alice"


def test_a_token_use_is_noted_at_most_once_a_minute(alice):
    client = token_client(alice)
    token = ApiToken.objects.get(user=alice)
    client.get("/api/v1/me/")
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    client.get("/api/v1/me/")

    assert first is not None
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first


def test_a_stale_last_use_is_updated(alice):
    client = token_client(alice)
    ApiToken.objects.filter(user=alice).update(last_used_at=timezone.now() - timedelta(minutes=5))

    client.get("/api/v1/me/")

    assert timezone.now() - ApiToken.objects.get(user=alice).last_used_at < timedelta(seconds=10)


def test_a_revoked_token_is_refused_with_401(alice):
    client = token_client(alice)
    ApiToken.objects.filter(user=alice).delete()

    response = client.get("/api/v1/me/")

    error = error_of(response, 401, "unauthenticated")
    assert "revoked" in error["message"]
    assert response["WWW-Authenticate"] == "Token"


def test_an_unknown_token_is_refused_with_401(anon, alice):
    anon.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")

    error_of(anon.get("/api/v1/bookings/"), 401, "unauthenticated")


def test_a_token_of_an_inactive_user_is_refused(alice):
    client = token_client(alice)
    alice.is_active = False
    alice.save()

    error_of(client.get("/api/v1/me/"), 401, "unauthenticated")


def test_a_malformed_token_header_is_refused(anon, alice):
    anon.credentials(HTTP_AUTHORIZATION="Token two words")

    error_of(anon.get("/api/v1/me/"), 401, "unauthenticated")


def test_no_credentials_is_401_asking_for_a_token(anon):
    response = anon.get("/api/v1/bookings/")

    error_of(response, 401, "unauthenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_a_session_signs_the_request_in(alice):
    client = APIClient()
    client.force_login(alice)

    assert client.get("/api/v1/me/").json()["username"] == "alice"


def test_a_session_write_needs_the_csrf_token(alice, thalys, later):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)

    response = client.post("/api/v1/bookings/", {"server": "thalys", "start": later.isoformat(), "duration": "1h"}, format="json")

    error_of(response, 403, "forbidden")


def test_auth_token_issues_a_working_token(anon, alice):
    response = anon.post("/api/v1/auth/token/", {"username": "alice", "password": "correct horse battery staple", "name": "laptop"})

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "laptop"
    assert body["token"].startswith(body["prefix"])
    assert ApiToken.objects.get(user=alice).key_hash == ApiToken.hash(body["token"])
    anon.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert anon.get("/api/v1/me/").json()["username"] == "alice"


def test_auth_token_names_the_token_cli_by_default(anon, alice):
    response = anon.post("/api/v1/auth/token/", {"username": "alice", "password": "correct horse battery staple"})

    assert response.json()["name"] == "cli"


def test_auth_token_refuses_a_wrong_password(anon, alice):
    response = anon.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"})

    error = error_of(response, 400, "invalid")
    assert error["message"] == "Wrong user name or password."
    assert not ApiToken.objects.exists()


def test_auth_token_refuses_an_unknown_user(anon, db):
    error_of(anon.post("/api/v1/auth/token/", {"username": "nobody", "password": "x"}), 400, "invalid")


def test_auth_token_names_missing_fields(anon, db):
    error = error_of(anon.post("/api/v1/auth/token/", {}), 400, "invalid")

    assert set(error["fields"]) == {"username", "password"}


def test_auth_token_ignores_a_stale_token_header(anon, alice):
    anon.credentials(HTTP_AUTHORIZATION="Token revoked-long-ago")

    response = anon.post("/api/v1/auth/token/", {"username": "alice", "password": "correct horse battery staple"})

    assert response.status_code == 201
