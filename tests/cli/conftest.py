"""The CLI runs as a subprocess against Django's live server, with HOME in a temporary folder."""
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from reservations import services
from reservations.models import ApiToken, Booking

CLI = [sys.executable, "-m", "labres.cli"]


@pytest.fixture
def lab_in_utc(settings):
    """Times the CLI sends without an offset are read in UTC, whatever TIME_ZONE the environment sets."""
    settings.TIME_ZONE = "UTC"


@pytest.fixture
def alice_key(alice):
    return ApiToken.issue(alice, "cli")[1]


@pytest.fixture
def cli_env(live_server, tmp_path, alice_key, thalys):
    """The environment the CLI runs in: alice's token for the live server, this host is thalys."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("LABRES_", "XDG_", "NO_COLOR", "CUDA_"))}
    env.update(
        HOME=str(tmp_path),
        LABRES_URL=live_server.url,
        LABRES_TOKEN=alice_key,
        LABRES_SERVER="thalys",
        NO_COLOR="1",
    )
    return env


@pytest.fixture
def cli(cli_env):
    """cli('status', 'thalys:0', env={...}, input='...') runs `labres` and returns the finished process."""

    def run(*args, env=None, input=None, timeout=60):
        return subprocess.run(
            [*CLI, *args],
            env={**cli_env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=settings.BASE_DIR,
        )

    return run


@pytest.fixture
def spawn(cli_env):
    """spawn('run', ..., env={...}) starts `labres` in its own session (no terminal) and returns the Popen."""
    started = []

    def start(*args, env=None):
        process = subprocess.Popen(
            [*CLI, *args],
            env={**cli_env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=settings.BASE_DIR,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def closed_url():
    """The address of a port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def holding():
    """holding(user, hours=1, **target): a booking running from now, made through the service layer."""

    def hold(user, hours=1, purpose="training resnet", **target):
        start = timezone.now()
        return services.create_booking(user, start=start, end=start + timedelta(hours=hours), purpose=purpose, **target)

    return hold


def wait_for(predicate, timeout=15, interval=0.05):
    """Poll until predicate() is true; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"gave up waiting after {timeout} s")


def only_cli_booking():
    return Booking.objects.filter(source=Booking.Source.CLI).first()
