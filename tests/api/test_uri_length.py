"""A URI longer than the API reads is refused in the API's error shape, also behind gunicorn with the shipped config."""
import http.client
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from django.conf import settings

from .conftest import error_of

LONG_QUERY = "/api/v1/bookings/?server=" + "x" * 5000  # over API_MAX_URI_LENGTH (4096) and gunicorn's default (4094)


@pytest.mark.django_db
def test_a_uri_over_the_limit_is_414_uri_too_long(as_alice):
    error = error_of(as_alice.get(LONG_QUERY), 414, "uri_too_long")

    assert str(settings.API_MAX_URI_LENGTH) in error["message"]


@pytest.mark.django_db
def test_a_uri_at_the_limit_is_read(as_alice):
    path = "/api/v1/bookings/?user="
    assert as_alice.get(path + "x" * (settings.API_MAX_URI_LENGTH - len(path))).status_code == 200


def test_pages_outside_the_api_are_not_cut_short(client):
    assert client.get("/accounts/login/?next=" + "x" * 5000).status_code == 200


@pytest.fixture
def gunicorn():
    """gunicorn with the shipped config (labres/gunicorn_config.py), one worker, on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "gunicorn", "-c", "python:labres.gunicorn_config", "labres.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"]
    env = {**os.environ, "ALLOWED_HOSTS": "127.0.0.1", "DEBUG": ""}
    process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    yield port
    process.terminate()
    process.wait(timeout=20)


def test_behind_gunicorn_a_long_api_uri_gets_json_not_gunicorns_html_page(gunicorn):
    connection = http.client.HTTPConnection("127.0.0.1", gunicorn, timeout=10)
    connection.request("GET", LONG_QUERY, headers={"Accept": "application/json"})
    response = connection.getresponse()

    assert response.status == 414
    assert response.getheader("Content-Type") == "application/json"
    assert json.loads(response.read())["error"]["code"] == "uri_too_long"
