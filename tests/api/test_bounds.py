"""One request cannot hang the API: repeat rules, device lists, bodies and JSON are bounded before they are read,
and refused quickly in the one error shape (issue 17, section 3)."""
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from reservations.models import Booking, BookingSeries
from reservations.parsing import MAX_JSON_DEPTH

from .conftest import error_of

pytestmark = pytest.mark.django_db

CPU_BUDGET = 0.5  # seconds of CPU for the whole request: generous on a slow machine; the unbounded code took seconds


def timed_post(client, path, body):
    """(response, CPU seconds) for a POST of `body`, raw JSON text."""
    began = time.process_time()
    response = client.post(path, body, content_type="application/json")
    return response, time.process_time() - began


@pytest.fixture
def start():
    """A whole hour three days ahead: what is refused below is refused at any hour."""
    return (timezone.now() + timedelta(days=3)).replace(minute=0, second=0, microsecond=0).isoformat()


@pytest.mark.parametrize(
    "repeat",
    [
        {"rrule": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "until": "2999-12-31"},
        {"rrule": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;UNTIL=29991231"},
        {"rrule": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=31;COUNT=5"},
    ],
)
def test_a_rule_that_never_gives_a_date_is_a_quick_400(as_alice, thalys, start, repeat):
    payload = {"server": "thalys", "devices": "0", "start": start, "duration": "1h", **repeat}

    response, spent = timed_post(as_alice, "/api/v1/series/", json.dumps(payload))

    error = error_of(response, 400, "invalid")
    assert "gives no date" in error["fields"]["repeat"][0] and "365 days ahead" in error["message"]
    assert spent < CPU_BUDGET
    assert not BookingSeries.objects.exists() and not Booking.objects.exists()


def test_a_count_past_the_horizon_is_a_400_on_count(as_alice, thalys, start):
    payload = {"server": "thalys", "devices": "0", "start": start, "duration": "1h", "repeat": "monthly", "count": 24}

    error = error_of(as_alice.post("/api/v1/series/", payload, format="json"), 400, "invalid")

    assert "its 24 dates reach further" in error["fields"]["count"][0]


@pytest.mark.parametrize("count", [1025, 5_000, 200_000])
def test_a_list_of_more_device_ids_than_a_server_can_hold_is_a_quick_4xx(as_alice, thalys, count, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024  # the list itself is refused, not its size
    payload = {"server": "thalys", "devices": list(range(1, count + 1)), "duration": "1h"}

    response, spent = timed_post(as_alice, "/api/v1/claims/", json.dumps(payload))

    error = error_of(response, 400, "invalid")
    assert error["fields"]["devices"] == [f"A server has at most 1024 GPUs; this list has {count} device ids."]
    assert spent < CPU_BUDGET


def test_device_ids_not_on_the_server_are_named_with_what_it_has(as_alice, thalys):
    payload = {"server": "thalys", "devices": list(range(10_000, 10_020)), "duration": "1h"}

    error = error_of(as_alice.post("/api/v1/claims/", payload, format="json"), 400, "invalid")

    assert error["fields"]["devices"] == [
        "Device ids 10000, 10001, 10002, 10003, 10004, 10005, 10006, 10007, 10008, 10009 and 10 more are not GPUs of thalys "
        "(it has 8 GPUs); see devices/?server=thalys."
    ]


@pytest.mark.parametrize(
    "devices, says",
    [
        (",".join(["0-1023"] * 50_000), "characters long"),
        ("0-999999999", "out of range"),
        ("9" * 5000, "characters long"),
        ("9" * 400, "out of range"),
    ],
)
def test_a_giant_device_set_is_a_quick_400(as_alice, thalys, devices, says):
    response, spent = timed_post(as_alice, "/api/v1/claims/", json.dumps({"server": "thalys", "devices": devices, "duration": "1h"}))

    error = error_of(response, 400, "invalid")
    assert says in error["fields"]["devices"][0]
    assert spent < CPU_BUDGET


def test_a_body_over_the_bound_is_413_before_it_is_parsed(as_alice, thalys, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    padding = "x" * 1000

    error = error_of(as_alice.post("/api/v1/claims/", json.dumps({"server": "thalys", "purpose": padding}), content_type="application/json"), 413, "too_large")

    assert "larger than 1000 bytes" in error["message"]
    assert not Booking.objects.exists()


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 2000, 50_000])
def test_json_nested_too_deep_is_a_400_even_before_signing_in(anon, depth):
    body = '{"username":' * depth + '"alice"' + "}" * depth

    response, spent = timed_post(anon, "/api/v1/auth/token/", body)

    error = error_of(response, 400, "invalid")
    assert f"deeper than {MAX_JSON_DEPTH} levels" in error["message"]
    assert spent < CPU_BUDGET


def test_json_nested_too_deep_is_a_400_for_members_too(as_alice, thalys):
    body = json.dumps({"server": "thalys", "devices": "0", "duration": "1h", "purpose": "p"})[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}"

    error = error_of(as_alice.post("/api/v1/claims/", body, content_type="application/json"), 400, "invalid")

    assert "deeper than" in error["message"]


def test_ordinary_json_is_still_read_as_before(as_alice, thalys, start):
    response = as_alice.post("/api/v1/bookings/", {"server": "thalys", "devices": "0-1", "start": start, "duration": "1h"}, format="json")
    assert response.status_code == 201, response.content

    error = error_of(as_alice.post("/api/v1/bookings/", '{"server": NaN}', content_type="application/json"), 400, "invalid")
    assert error["message"].startswith("JSON parse error")


@pytest.mark.parametrize(
    "path, field",
    [
        ("/api/v1/bookings/?start=", "start"),
        ("/api/v1/bookings/?end=", "end"),
        ("/api/v1/bookings/?mine=maybe", "mine"),
        ("/api/v1/bookings/?status=", "status"),
        ("/api/v1/bookings/?device=", "device"),
        ("/api/v1/availability/?start=", "start"),
        ("/api/v1/availability/?server=", "server"),
        ("/api/v1/telemetry/latest/?server=", "server"),
        ("/api/v1/telemetry/history/?device=thalys:0&period=", "period"),
        ("/api/v1/servers/?page_size=null", "page_size"),
        ("/api/v1/bookings/?page_size=0", "page_size"),
        ("/api/v1/rooms/?page_size=501", "page_size"),
        ("/api/v1/bookings/?start=1996-09-31T22:16", "start"),  # well formed, no such day: not a 500
        ("/api/v1/bookings/?end=3000-01-01T00:00Z", "end"),
        ("/api/v1/devices/?server=%00", "server"),
        ("/api/v1/bookings/?user=a%1Bb", "user"),
        ("/api/v1/availability/?room=%0A", "room"),
    ],
)
def test_an_empty_or_unreadable_query_value_is_refused_not_ignored(as_alice, thalys, path, field):
    error = error_of(as_alice.get(path), 400, "invalid")

    assert field in error["fields"]
