"""Property-based tests of every operation, generated from the served schema by schemathesis.

A live server with a member, a token, a server of 8 GPUs, a room and some bookings; for each
operation schemathesis sends valid and invalid requests (bounded, derandomized, no shrinking)
and checks that none answers 5xx and that each answer matches the schema for its status.
Select or skip it with -m schemathesis / -m "not schemathesis".
"""
from datetime import timedelta

import pytest
import schemathesis
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from monitoring.fake_nvml import demo_host
from monitoring.sampler import read_host
from monitoring.services import record_reading
from reservations import services
from reservations.models import ApiToken

from ..factories import RoomFactory, ServerFactory, UserFactory

pytestmark = [pytest.mark.schemathesis, pytest.mark.django_db(transaction=True)]
EXAMPLES = 25  # per operation and mode (valid, invalid)


@pytest.fixture
def member_key(transactional_db, settings):
    settings.API_THROTTLE_USER = ""  # hundreds of requests a minute
    settings.API_THROTTLE_ANON = ""
    member = UserFactory(username="member")
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
    return ApiToken.issue(member, "schemathesis")[1]


@pytest.fixture
def api_schema(live_server, member_key):
    return schemathesis.openapi.from_url(f"{live_server.url}/api/schema/?format=json")


def test_every_operation_answers_within_its_schema(api_schema, member_key):
    # Operation by operation through Hypothesis directly: schemathesis.pytest.from_fixture
    # reaches for a pytest node attribute (_nodeid) that pytest 9 no longer has.
    failures = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _exercise(operation, mode, member_key)
            except Unsatisfiable:
                pass  # no invalid request to make: GET me/ takes no input, any text names a server
            except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001  every operation is tried; all failures are reported
                failures.append(f"{operation.label} ({mode.value}): {error}")
    assert len(operations) == 30  # with the waitlist's 4, the series' 5, approve and decline
    assert not failures, "\n\n".join(failures)


def _exercise(operation, mode, key):
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
        suppress_health_check=list(HealthCheck),
    )
    def exercise(case):
        case.call_and_validate(headers={"Authorization": f"Token {key}"}, checks=[not_a_server_error, response_schema_conformance])

    exercise()
