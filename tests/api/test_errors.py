"""Whatever goes wrong under /api/, the answer has the one error shape."""
import pytest

from .conftest import error_of

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
