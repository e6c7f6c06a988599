"""/metrics: per-GPU gauges, host freshness, bookings and alerts in Prometheus's text format,
readable with METRICS_TOKEN as a bearer token or by staff signed in."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from monitoring.models import Alert
from monitoring.sampler import GpuProcess, GpuReading, HostReading
from monitoring.services import record_reading
from tests.factories import ServerFactory

from .telemetry import running_booking

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-scrape-token"
MIB = 1024 * 1024


@pytest.fixture
def scrape(client, settings):
    """GET /metrics with the bearer token; returns {(name, frozenset(labels)): value} of the answer."""
    settings.METRICS_TOKEN = TOKEN

    def scrape():
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200, response.content
        return samples_of(response.content.decode())

    return scrape


def samples_of(text):
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def gpu_labels(server, index, uuid="", model="NVIDIA A100-SXM4-80GB"):
    return {"server": server, "gpu": str(index), "uuid": uuid, "model": model}


def gpu_reading(index, util=0, processes=(), **values):
    defaults = dict(
        model="NVIDIA A100-SXM4-80GB", memory_total_mib=81920, gpu_util=util, mem_util=util // 2, memory_used_mib=2048,
        temperature_c=55, power_w=180.5, power_limit_w=400.0, processes=None if processes is None else list(processes),
    )
    return GpuReading(index=index, **{**defaults, **values})


def store(server, at, *gpus):
    return record_reading(server, HostReading(taken_at=at, driver_version="580.95.05", gpus=list(gpus)), agent_version="0.1.0")


# --- access --------------------------------------------------------------------------------


def test_metrics_answer_the_bearer_token_in_the_text_format(client, settings, thalys):
    settings.METRICS_TOKEN = TOKEN

    response = client.get(reverse("metrics"), HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    assert "# TYPE labres_gpu_booked gauge" in response.content.decode()


def test_metrics_refuse_a_wrong_token(client, settings, thalys):
    settings.METRICS_TOKEN = TOKEN

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-it")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_metrics_refuse_any_token_while_none_is_set(client, settings, thalys):
    settings.METRICS_TOKEN = ""

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")

    assert response.status_code == 401


def test_metrics_refuse_anonymous_requests_saying_how_to_authenticate(client, settings, thalys):
    settings.METRICS_TOKEN = TOKEN

    response = client.get("/metrics")

    assert response.status_code == 401
    assert response["Content-Type"].startswith("text/plain")
    assert "Set METRICS_TOKEN" in response.content.decode()
    assert "bearer token" in response.content.decode()


def test_metrics_are_open_to_staff_signed_in(client, staff, thalys):
    client.force_login(staff)

    response = client.get("/metrics")

    assert response.status_code == 200


def test_metrics_are_closed_to_members_who_are_not_staff(client, alice, thalys):
    client.force_login(alice)

    response = client.get("/metrics")

    assert response.status_code == 401


# --- what they say -------------------------------------------------------------------------


def test_gpu_gauges_carry_the_latest_reading(scrape, thalys):
    store(thalys, timezone.now(), gpu_reading(0, util=87, uuid="GPU-aaaa"), *(gpu_reading(i) for i in range(1, 8)))

    samples = scrape()

    labels = gpu_labels("thalys", 0, uuid="GPU-aaaa")
    assert value(samples, "labres_gpu_utilization_percent", **labels) == 87
    assert value(samples, "labres_gpu_memory_utilization_percent", **labels) == 43
    assert value(samples, "labres_gpu_memory_used_bytes", **labels) == 2048 * MIB
    assert value(samples, "labres_gpu_memory_total_bytes", **labels) == 81920 * MIB
    assert value(samples, "labres_gpu_temperature_celsius", **labels) == 55
    assert value(samples, "labres_gpu_power_watts", **labels) == 180.5
    assert value(samples, "labres_gpu_power_limit_watts", **labels) == 400
    assert value(samples, "labres_gpu_processes", **labels) == 0


def test_a_gpu_without_a_reading_has_no_load_gauges(scrape, thalys):
    samples = scrape()

    labels = gpu_labels("thalys", 0)
    assert ("labres_gpu_utilization_percent", frozenset(labels.items())) not in samples
    assert value(samples, "labres_gpu_memory_total_bytes", **labels) == 81920 * MIB
    assert value(samples, "labres_gpu_booked", **labels) == 0


def test_a_booked_gpu_names_its_booking_and_holder(scrape, members, thalys):
    alice, _ = members
    booking = running_booking(alice, thalys, "2", started_ago=timedelta(minutes=5))
    store(thalys, timezone.now(), *(gpu_reading(i, processes=[GpuProcess(9, 100, "alice")] if i == 2 else []) for i in range(8)))

    samples = scrape()

    assert value(samples, "labres_gpu_booked", **gpu_labels("thalys", 2)) == 1
    assert value(samples, "labres_gpu_booked", **gpu_labels("thalys", 3)) == 0
    assert value(samples, "labres_gpu_booking_info", server="thalys", gpu="2", booking=str(booking.pk), user="alice") == 1
    assert [key for key in samples if key[0] == "labres_gpu_booking_info"] == [
        ("labres_gpu_booking_info", frozenset({"server": "thalys", "gpu": "2", "booking": str(booking.pk), "user": "alice"}.items()))
    ]
    assert value(samples, "labres_gpu_unbooked_use", **gpu_labels("thalys", 2)) == 0


def test_someone_running_on_a_gpu_they_did_not_book_is_unbooked_use(scrape, members, thalys):
    store(thalys, timezone.now(), gpu_reading(0, util=90, processes=[GpuProcess(9, 100, "bob"), GpuProcess(10, 100, "bob")]),
          *(gpu_reading(i) for i in range(1, 8)))

    samples = scrape()

    assert value(samples, "labres_gpu_unbooked_use", **gpu_labels("thalys", 0)) == 1
    assert value(samples, "labres_gpu_processes", **gpu_labels("thalys", 0)) == 2
    assert value(samples, "labres_gpu_unbooked_use", **gpu_labels("thalys", 1)) == 0


def test_hosts_report_when_last_seen_and_whether_they_are_up_or_stale(scrape, thalys):
    eurostar = ServerFactory(name="eurostar", gpus=1)
    ServerFactory(name="ice", gpus=1)
    seen = timezone.now().replace(microsecond=0)
    store(thalys, seen, *(gpu_reading(i) for i in range(8)))
    store(eurostar, seen - timedelta(minutes=10), gpu_reading(0))

    samples = scrape()

    assert value(samples, "labres_host_last_seen_timestamp_seconds", server="thalys") == seen.timestamp()
    assert [value(samples, "labres_host_up", server=name) for name in ("thalys", "eurostar", "ice")] == [1, 0, 0]
    assert [value(samples, "labres_host_stale", server=name) for name in ("thalys", "eurostar", "ice")] == [0, 1, 0]
    assert value(samples, "labres_host_info", server="thalys", driver_version="580.95.05", agent_version="0.1.0") == 1
    assert ("labres_host_last_seen_timestamp_seconds", frozenset({"server": "ice"}.items())) not in samples


def test_running_bookings_are_counted_by_server(scrape, alice, bob, thalys, book):
    ServerFactory(name="eurostar", gpus=2)
    running_booking(alice, thalys, "0", started_ago=timedelta(minutes=5))
    running_booking(bob, thalys, "1-2", started_ago=timedelta(minutes=5))
    book(alice, timezone.now() + timedelta(hours=3), server="thalys", devices="3")  # not running yet

    samples = scrape()

    assert value(samples, "labres_bookings_running", server="thalys") == 2
    assert value(samples, "labres_bookings_running", server="eurostar") == 0


def test_open_alerts_are_counted_by_kind(scrape, thalys):
    now = timezone.now()
    for n, resolved in enumerate([None, None, now]):
        Alert.objects.create(kind=Alert.Kind.UNBOOKED_USE, key=f"unbooked:{n}", server=thalys, message="m", opened_at=now,
                             last_seen_at=now, resolved_at=resolved)

    samples = scrape()

    assert value(samples, "labres_alerts_open", kind="unbooked_use") == 2
    assert value(samples, "labres_alerts_open", kind="idle_booking") == 0
    assert value(samples, "labres_alerts_open", kind="host_stale") == 0


def test_metrics_cost_the_same_queries_for_one_server_or_three(client, settings, members, thalys):
    settings.METRICS_TOKEN = TOKEN
    alice, bob = members

    def queries():
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200
        return len(captured)

    running_booking(alice, thalys, "0", started_ago=timedelta(minutes=5))
    store(thalys, timezone.now(), gpu_reading(0, processes=[GpuProcess(1, 10, "alice")]), *(gpu_reading(i) for i in range(1, 8)))
    one = queries()
    for name in ("eurostar", "ice"):
        server = ServerFactory(name=name, gpus=4)
        running_booking(bob, server, "1", started_ago=timedelta(minutes=5))
        store(server, timezone.now(), gpu_reading(0), gpu_reading(1, processes=[GpuProcess(2, 10, "bob"), GpuProcess(3, 10, "eve")]),
              gpu_reading(2), gpu_reading(3))
    three = queries()

    assert three == one
