"""schemathesis against the live server, with every check it has (`st run --checks all`).

A live server with a member, a token, a server of 8 GPUs, a room, some bookings, a running booking
with a fresh reading, and a fair-use limit the member can run into. schemathesis sends valid and
invalid requests to every operation (examples, coverage, fuzzing and stateful phases; few examples
each, one seed) and checks, among others: no 5xx; each status documented (ST103) and each answer
matching the schema for its status; schema-violating requests refused (ST201); schema-valid ones
accepted (ST202) except the rules a schema cannot state, listed in tests/api/schemathesis.toml;
a missing token answered 401. Select or skip it with -m schemathesis / -m "not schemathesis".
"""
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from monitoring.fake_nvml import demo_host
from monitoring.sampler import read_host
from monitoring.services import record_reading
from reservations import services
from reservations.models import ApiToken, Limit

from ..factories import RoomFactory, ServerFactory, UserFactory

pytestmark = [pytest.mark.schemathesis, pytest.mark.django_db(transaction=True)]
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = 10  # per operation and phase
OPERATIONS = 31  # with the waitlist's 4, the series' 5, approve, decline and a booking's history


@pytest.fixture
def member_key(transactional_db, settings):
    settings.API_THROTTLE_USER = ""  # hundreds of requests a minute
    settings.API_THROTTLE_ANON = ""
    member = UserFactory(username="member")
    member.set_password("member-pass-42")
    member.save()
    other = UserFactory(username="other")
    thalys = ServerFactory(name="thalys", gpus=8)
    RoomFactory(name="Lab 2")
    start = (timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)
    for n, devices in enumerate(["0", "1-2", None]):
        services.create_booking(member, start=start + timedelta(hours=n), end=start + timedelta(hours=n + 1), server="thalys", devices=devices)
    services.create_booking(other, start=start, end=start + timedelta(hours=2), room="Lab 2", purpose="seminar")
    # A running booking and a fresh reading, so telemetry/latest/ answers with readings, processes and a booking.
    now = timezone.now()
    services.create_booking(member, start=now - timedelta(minutes=5), end=now + timedelta(hours=1), server="thalys", devices="3", now=now - timedelta(minutes=5))
    record_reading(thalys, read_host(demo_host(), now=now))
    # Whole-server bookings and long claims then meet a fair-use limit: 409 limit_exceeded, with its `limit`.
    Limit.objects.create(user=member, kind=Limit.Kind.MAX_GPUS, number=4)
    return ApiToken.issue(member, "schemathesis")[1]


def test_every_operation_passes_every_check(live_server, member_key, tmp_path):
    command = [
        str(Path(sys.executable).with_name("st")), "--config-file", str(CONFIG), "run", f"{live_server.url}/api/schema/?format=json",
        "--checks", "all", "--header", f"Authorization: Token {member_key}",
        "--max-examples", str(EXAMPLES), "--seed", "18", "--no-shrink", "--workers", "1", "--continue-on-failure",
        "--report", "ndjson", "--report-dir", str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)

    report = result.stdout + result.stderr
    assert f"Selected: {OPERATIONS}/{OPERATIONS}" in report and f"Tested: {OPERATIONS}" in report, report
    assert result.returncode == 0, report
