"""With Redis (cache and broker) down or hanging, bookings still work on every surface, the
password limits still hold (they live in the database), and /health/ answers 503 naming what is
down. A redis-server of the test's own is started, killed and started again."""
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import redis
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from tests.api.conftest import token_client
from tests.conftest import IN_CI
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class OwnRedis:
    """A redis-server on a free port, nothing saved to disk."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self):
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def own_redis():
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is not installed; CI must run the Redis outage tests")
        pytest.skip("redis-server is not installed")
    server = OwnRedis()
    server.start()
    yield server
    if server.process.poll() is None:
        server.kill()


def use_redis(settings, url):
    """Cache and broker on `url`, with the timeouts labres/settings.py gives them."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": settings.REDIS_TIMEOUT, "socket_timeout": settings.REDIS_TIMEOUT},
        }
    }
    settings.CELERY_BROKER_URL = url
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}


@pytest.fixture
def member(db):
    return UserFactory(username="dana", password="right-password")


def api_book(client, start, hours):
    return client.post(
        "/api/v1/bookings/", {"server": "thalys", "devices": "0", "start": (start + hours).isoformat(), "duration": "1h"}, format="json"
    )


def web_book(client, start):
    local = start.astimezone(ZoneInfo(django_settings.TIME_ZONE))
    data = {
        "what": "gpus", "server": "thalys", "gpus": ["thalys:1"], "devices": "", "room": "",
        "start": local.strftime("%Y-%m-%dT%H:%M"), "length": "1h", "duration": "", "end": "", "purpose": "",
    }
    return client.post("/book/", data)


def token_request(username, password):
    return APIClient().post("/api/v1/auth/token/", {"username": username, "password": password}).status_code


def test_bookings_sign_in_and_health_through_a_redis_outage(own_redis, settings, client, member, thalys, later):
    use_redis(settings, own_redis.url)
    hour = timedelta(hours=1)
    api = token_client(member)
    client.force_login(member)
    assert api_book(api, later, 0 * hour).status_code == 201
    assert client.get("/health/").status_code == 200

    own_redis.kill()

    api_codes = [api_book(api, later, n * hour).status_code for n in range(1, 6)]
    web = web_book(client, later)
    usage = client.get("/usage/")
    health = client.get("/health/")
    assert api_codes == [201] * 5
    assert web.status_code == 303, web.content.decode()[:500]
    assert usage.status_code == 200
    assert health.status_code == 503
    assert health["Content-Type"] == "application/json"
    body = health.json()
    assert (body["status"], body["database"]) == ("down", "ok")
    assert body["down"] == ["cache", "broker"]
    assert body["cache"].startswith("error: ") and body["broker"].startswith("error: ")
    # The password limits do not depend on the cache: they neither fail open nor lock everyone out.
    settings.LOGIN_ATTEMPTS_LIMIT = 2
    token_codes = [token_request("dana", password) for password in ["wrong", "wrong", "right-password"]]
    assert token_codes == [400, 400, 429]
    assert api_book(api, later, 7 * hour).status_code == 201

    own_redis.start()

    assert client.get("/health/").json()["down"] == []
    assert client.get("/health/").status_code == 200
    settings.API_THROTTLE_USER = "1/minute"  # the cache counts again
    assert [api_book(api, later, n * hour).status_code for n in (8, 9)] == [201, 429]


# --- a Redis that accepts connections and never answers ----------------------------------------


@pytest.fixture
def hanging_redis():
    """A socket that listens (the kernel completes each connection) and never reads or answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(100)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


def test_a_hanging_redis_does_not_hang_bookings_or_health(hanging_redis, settings, member, thalys, later, client):
    use_redis(settings, hanging_redis)
    api = token_client(member)

    began = time.monotonic()
    booked = api_book(api, later, timedelta(0))
    health = client.get("/health/")
    took = time.monotonic() - began

    assert booked.status_code == 201
    assert health.status_code == 503
    assert health.json()["down"] == ["cache", "broker"]
    assert took < 10, f"a hanging Redis held a booking and a health check {took:.1f} s"


def test_the_settings_give_the_redis_cache_timeouts(hanging_redis):
    code = (
        "import time, django; django.setup()\n"
        "from django.core.cache import cache\n"
        "began = time.monotonic()\n"
        "try:\n    cache.get('anything')\nexcept Exception as error:\n    print(type(error).__name__)\n"
        "print(round(time.monotonic() - began, 1))\n"
    )
    environment = {**os.environ, "REDIS_URL": hanging_redis, "REDIS_TIMEOUT": "0.5"}
    result = subprocess.run([sys.executable, "-c", code], cwd=django_settings.BASE_DIR, env=environment, capture_output=True, text=True, timeout=120)

    error, seconds = result.stdout.split()
    assert error == "TimeoutError", result.stderr
    assert float(seconds) < 2  # redis-py alone waits 5 s a call
