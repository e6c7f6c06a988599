"""The telemetry API: telemetry/latest/ (every GPU's latest reading, processes and booking) and
telemetry/history/ (one GPU over a span, from the resolution that suits it)."""
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from monitoring.models import GpuHour, GpuMinute
from monitoring.sampler import GpuProcess, GpuReading, HostReading
from monitoring.services import record_reading
from reservations.models import ApiToken
from tests.factories import ServerFactory

from .telemetry import running_booking, utilization_series

pytestmark = pytest.mark.django_db

LATEST = "/api/v1/telemetry/latest/"
HISTORY = "/api/v1/telemetry/history/"


def token_client(user):
    _, key = ApiToken.issue(user, "test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def error_of(response, status, code):
    """The error body, after checking the status and the API's one error shape."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def reading(at, *gpus, driver="580.95.05"):
    """A host reading at `at` with these GpuReadings (indices in order)."""
    return HostReading(taken_at=at, driver_version=driver, gpus=list(gpus))


def gpu_reading(index, util=50, processes=(), **values):
    defaults = dict(
        uuid=None, model="NVIDIA A100-SXM4-80GB", memory_total_mib=81920, gpu_util=util, mem_util=util // 2,
        memory_used_mib=20000, temperature_c=60, power_w=250.0, power_limit_w=400.0, processes=None if processes is None else list(processes),
    )
    return GpuReading(index=index, **{**defaults, **values})


def idle_gpus(count, start=0):
    return [gpu_reading(index, util=0) for index in range(start, start + count)]


@pytest.fixture
def as_alice(alice):
    return token_client(alice)


# --- latest --------------------------------------------------------------------------------


def test_latest_shows_each_gpu_with_its_reading_processes_and_booking(as_alice, members, thalys):
    alice, _ = members
    booking = running_booking(alice, thalys, "3", started_ago=timedelta(minutes=10), purpose="resnet")
    now = timezone.now()
    third = gpu_reading(3, util=87, uuid="GPU-test-3", processes=[GpuProcess(4242, 30000, "alice", "python3")])
    record_reading(thalys, reading(now, *idle_gpus(3), third, *idle_gpus(4, 4)), agent_version="0.1.0")

    response = as_alice.get(LATEST)

    assert response.status_code == 200
    (host,) = response.json()
    assert host["server"] == "thalys"
    assert host["state"] == "ok"
    assert host["last_seen_at"].endswith("Z")
    assert (host["driver_version"], host["agent_version"], host["nvml_error"]) == ("580.95.05", "0.1.0", "")
    assert [g["device"] for g in host["gpus"]] == [f"thalys:{i}" for i in range(8)]
    third = host["gpus"][3]
    assert third["index"] == 3
    assert third["uuid"] == "GPU-test-3"
    assert third["memory_total_mib"] == 81920
    assert (third["gpu_util"], third["mem_util"], third["memory_used_mib"]) == (87, 43, 20000)
    assert (third["temperature_c"], third["power_w"], third["power_limit_w"]) == (60, 250.0, 400.0)
    assert (third["load"], third["match"], third["error"]) == ("high", "as booked", "")
    assert third["taken_at"] == host["last_seen_at"]
    assert third["processes"] == [{"pid": 4242, "name": "python3", "used_memory_mib": 30000, "unix_user": "alice", "member": "Alice Liddell"}]
    assert third["booking"] == {
        "id": booking.pk, "user": "alice", "user_name": "Alice Liddell",
        "until": booking.end.astimezone(UTC).isoformat().replace("+00:00", "Z"), "purpose": "resnet",
    }
    assert host["gpus"][0]["booking"] is None
    assert host["gpus"][0]["match"] == "free"


def test_latest_names_no_member_for_an_unknown_unix_user(as_alice, members, thalys):
    record_reading(thalys, reading(timezone.now(), gpu_reading(0, processes=[GpuProcess(7, 100, "mallory")]), *idle_gpus(7, 1)))

    first = as_alice.get(LATEST).json()[0]["gpus"][0]

    assert first["processes"] == [{"pid": 7, "name": None, "used_memory_mib": 100, "unix_user": "mallory", "member": None}]
    assert first["match"] == "unbooked use"


def test_latest_gives_null_processes_with_the_note_when_the_host_cannot_see_them(as_alice, thalys):
    hidden = gpu_reading(0, processes=None, processes_note="Processes not visible: Insufficient Permissions")
    record_reading(thalys, reading(timezone.now(), hidden, *idle_gpus(7, 1)))

    first = as_alice.get(LATEST).json()[0]["gpus"][0]

    assert first["processes"] is None
    assert first["processes_note"] == "Processes not visible: Insufficient Permissions"


def test_latest_shows_a_stale_host_without_readings(as_alice, thalys):
    record_reading(thalys, reading(timezone.now() - timedelta(minutes=10), *idle_gpus(8)))

    (host,) = as_alice.get(LATEST).json()

    assert host["state"] == "stale"
    assert {(g["taken_at"], g["gpu_util"], g["load"], g["match"]) for g in host["gpus"]} == {(None, None, "no data", "unknown")}


def test_latest_lists_a_server_never_seen_with_its_gpus(as_alice, thalys):
    (host,) = as_alice.get(LATEST).json()

    assert (host["state"], host["last_seen_at"]) == ("never seen", None)
    assert len(host["gpus"]) == 8


def test_latest_needs_a_token_or_a_session(thalys):
    error = error_of(APIClient().get(LATEST), 401, "unauthenticated")

    assert "credentials" in error["message"].lower()


def test_latest_accepts_a_session(client, alice, thalys):
    client.force_login(alice)

    response = client.get(LATEST)

    assert response.status_code == 200
    assert response.json()[0]["server"] == "thalys"


def test_latest_narrows_to_one_server_by_name_in_any_case(as_alice, thalys):
    ServerFactory(name="eurostar", gpus=2)

    response = as_alice.get(LATEST, {"server": "EuroStar"})

    assert [host["server"] for host in response.json()] == ["eurostar"]


def test_latest_for_an_unknown_server_is_404_listing_the_monitored_ones(as_alice, thalys):
    ServerFactory(name="ice", monitored=False)

    error = error_of(as_alice.get(LATEST, {"server": "nope"}), 404, "not_found")

    assert error["message"] == "There is no server 'nope'; monitored servers: thalys."


def test_latest_for_an_unmonitored_server_says_it_is_not_monitored(as_alice, thalys):
    ServerFactory(name="ice", monitored=False)

    error = error_of(as_alice.get(LATEST, {"server": "ice"}), 404, "not_found")

    assert error["message"].startswith("ice is not monitored")


def test_latest_costs_the_same_queries_for_one_server_or_three(as_alice, members, thalys):
    alice, bob = members

    def queries():
        with CaptureQueriesContext(connection) as captured:
            response = as_alice.get(LATEST)
        assert response.status_code == 200
        return len(captured), len(response.json())

    running_booking(alice, thalys, "0", started_ago=timedelta(minutes=5))
    record_reading(thalys, reading(timezone.now(), gpu_reading(0, processes=[GpuProcess(1, 10, "alice")]), *idle_gpus(7, 1)))
    queries()  # the token's first use notes when it was used: a write the next requests skip
    one, hosts = queries()
    assert hosts == 1
    for name in ("eurostar", "ice"):
        server = ServerFactory(name=name, gpus=4)
        running_booking(bob, server, "1", started_ago=timedelta(minutes=5))
        processes = [GpuProcess(2, 10, "bob"), GpuProcess(3, 10, "mallory")]
        record_reading(server, reading(timezone.now(), gpu_reading(0), gpu_reading(1, processes=processes), *idle_gpus(2, 2)))
    three, hosts = queries()

    assert hosts == 3
    assert three == one


# --- history -------------------------------------------------------------------------------


@pytest.fixture
def gpu3(thalys):
    return thalys.devices.get(index=3)


def minute(moment):
    return moment.replace(second=0, microsecond=0)


def rollups(model, device, start, count, step, util=40):
    """`count` rollup rows of `device` from `start`, `step` apart, each of 4 samples at `util` percent."""
    model.objects.bulk_create(
        model(device=device, bucket=start + n * step, samples=4, gpu_util_sum=4 * util, gpu_util_max=util + 10, active_samples=4,
              mem_util_sum=80, memory_used_sum=4 * 1000, memory_used_max=1200, temperature_max=70, power_samples=4, power_sum=800.0,
              power_max=210.0)
        for n in range(count)
    )


def test_history_of_the_last_hour_comes_from_raw_samples(as_alice, gpu3):
    now = timezone.now()
    utilization_series(gpu3, now - timedelta(minutes=30), now - timedelta(minutes=25), 60, step=60)

    body = as_alice.get(HISTORY, {"device": "thalys:3", "period": "hour"}).json()

    assert (body["device"], body["resolution"]) == ("thalys:3", "raw")
    assert len(body["points"]) == 5
    assert body["points"][0] == {
        "at": body["points"][0]["at"], "gpu_util": 60, "gpu_util_max": 60, "mem_util": 60, "memory_used_mib": 1060,
        "memory_peak_mib": 1060, "temperature_c": 40, "power_w": 100.0, "samples": 1,
    }
    assert body["points"][0]["at"].endswith("Z")


def test_history_of_the_last_day_comes_from_minute_rollups(as_alice, gpu3):
    rollups(GpuMinute, gpu3, minute(timezone.now()) - timedelta(hours=5), 3, timedelta(minutes=1))

    body = as_alice.get(HISTORY, {"device": "thalys:3", "period": "day"}).json()

    assert body["resolution"] == "minute"
    assert [(p["gpu_util"], p["gpu_util_max"], p["memory_peak_mib"], p["power_w"], p["samples"]) for p in body["points"]] == [(40, 50, 1200, 200.0, 4)] * 3


def test_history_of_the_last_week_comes_from_hour_rollups(as_alice, gpu3):
    rollups(GpuHour, gpu3, minute(timezone.now()).replace(minute=0) - timedelta(days=3), 2, timedelta(hours=1), util=10)

    body = as_alice.get(HISTORY, {"device": "thalys:3", "period": "week"}).json()

    assert body["resolution"] == "hour"
    assert [p["gpu_util"] for p in body["points"]] == [10, 10]


def test_history_takes_the_resolution_asked_for(as_alice, gpu3):
    start = minute(timezone.now()) - timedelta(minutes=30)
    rollups(GpuMinute, gpu3, start, 10, timedelta(minutes=1))

    body = as_alice.get(HISTORY, {"device": "thalys:3", "period": "hour", "resolution": "minute"}).json()

    assert body["resolution"] == "minute"
    assert len(body["points"]) == 10


def test_history_reads_times_without_offset_in_the_members_zone(as_alice, alice, gpu3):
    alice.profile.time_zone = "Asia/Tokyo"
    alice.profile.save()
    GpuHour.objects.create(device=gpu3, bucket=datetime(2026, 1, 1, 1, 0, tzinfo=UTC), samples=1, gpu_util_sum=5)

    body = as_alice.get(HISTORY, {"device": "thalys:3", "start": "2026-01-01T09:00", "end": "2026-01-02T09:00"}).json()

    assert (body["start"], body["end"]) == ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
    assert body["resolution"] == "hour"  # long gone from the raw and minute retention
    assert [p["at"] for p in body["points"]] == ["2026-01-01T01:00:00Z"]


def test_history_takes_times_with_an_offset_as_written(as_alice, gpu3):
    body = as_alice.get(HISTORY, {"device": "thalys:3", "start": "2026-01-01T09:00+01:00", "end": "2026-01-01T10:00+01:00"}).json()

    assert (body["start"], body["end"]) == ("2026-01-01T08:00:00Z", "2026-01-01T09:00:00Z")


def test_history_without_times_is_the_last_hour(as_alice, gpu3):
    body = as_alice.get(HISTORY, {"device": "thalys:3"}).json()

    start = datetime.fromisoformat(body["start"])
    end = datetime.fromisoformat(body["end"])
    assert end - start == timedelta(hours=1)
    assert abs(end - timezone.now()) < timedelta(minutes=1)


def test_history_needs_a_token_or_a_session(gpu3):
    error_of(APIClient().get(HISTORY, {"device": "thalys:3"}), 401, "unauthenticated")


def test_history_without_a_device_is_refused(as_alice, gpu3):
    error = error_of(as_alice.get(HISTORY, {"period": "hour"}), 400, "invalid")

    assert "device" in error["fields"]


@pytest.mark.parametrize("device", ["thalys", "thalys:0-1", "thalys:2,5"])
def test_history_of_more_than_one_gpu_is_refused(as_alice, gpu3, device):
    error = error_of(as_alice.get(HISTORY, {"device": device}), 400, "invalid")

    assert "name one GPU, e.g. thalys:" in error["fields"]["device"][0]


def test_history_of_an_unreadable_device_says_how_to_write_one(as_alice, gpu3):
    error = error_of(as_alice.get(HISTORY, {"device": "thalys:x"}), 400, "invalid")

    assert error["fields"]["device"] == ["'x' is not a GPU index or range; write e.g. 0, 0-3 or 0-2,5."]


def test_history_of_an_unknown_server_lists_the_servers(as_alice, gpu3):
    error = error_of(as_alice.get(HISTORY, {"device": "nope:0"}), 400, "invalid")

    assert error["fields"]["device"] == ["There is no server 'nope'; servers: thalys."]


def test_history_of_an_unknown_gpu_says_which_there_are(as_alice, gpu3):
    error = error_of(as_alice.get(HISTORY, {"device": "thalys:9"}), 400, "invalid")

    assert error["fields"]["device"] == ["thalys has no GPU 9 (it has 0-7)."]


def test_history_with_an_unreadable_time_is_refused(as_alice, gpu3):
    error = error_of(as_alice.get(HISTORY, {"device": "thalys:3", "start": "yesterday"}), 400, "invalid")

    assert "start" in error["fields"]


def test_history_ending_before_it_starts_is_refused(as_alice, gpu3):
    query = {"device": "thalys:3", "start": "2026-01-02T00:00Z", "end": "2026-01-01T00:00Z"}

    error = error_of(as_alice.get(HISTORY, query), 400, "invalid")

    assert error["fields"]["end"] == ["The end must be after the start."]


def test_history_starting_in_the_future_without_an_end_says_the_end_is_now(as_alice, gpu3):
    error = error_of(as_alice.get(HISTORY, {"device": "thalys:3", "start": "2999-01-01T00:00Z"}), 400, "invalid")

    assert error["fields"]["end"] == ["The end must be after the start (the end is now unless you give one)."]


def test_history_over_400_days_is_refused(as_alice, gpu3):
    query = {"device": "thalys:3", "start": "2024-01-01T00:00Z", "end": "2025-03-01T00:00Z"}

    error = error_of(as_alice.get(HISTORY, query), 400, "invalid")

    assert error["fields"]["end"] == ["A history spans at most 400 days; ask for a shorter one."]


def test_history_with_a_period_and_times_is_refused(as_alice, gpu3):
    error = error_of(as_alice.get(HISTORY, {"device": "thalys:3", "period": "day", "start": "2026-01-01T00:00Z"}), 400, "invalid")

    assert error["fields"]["period"] == ["Give a period or a start and end, not both."]


@pytest.mark.parametrize("name", ["period", "resolution"])
def test_history_with_an_unknown_choice_is_refused(as_alice, gpu3, name):
    error = error_of(as_alice.get(HISTORY, {"device": "thalys:3", name: "fortnight"}), 400, "invalid")

    assert name in error["fields"]
