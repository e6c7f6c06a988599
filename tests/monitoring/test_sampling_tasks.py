"""sample_host reads and stores one host; sample_all_hosts sends one message per active host to its own queue."""
import pytest

from monitoring import tasks
from monitoring.models import GpuSample, HostStatus
from tests.factories import ServerFactory

pytestmark = pytest.mark.django_db


def test_sample_host_records_samples_for_an_existing_server(thalys, monkeypatch):
    monkeypatch.setenv("LABRES_NVML", "fake")

    written = tasks.sample_host("thalys")

    assert written == 4  # the fake default host has 4 GPUs
    assert GpuSample.objects.filter(device__server=thalys).count() == 4
    assert HostStatus.objects.get(server=thalys).nvml_error == ""
    assert all(uuid.startswith("GPU-") for uuid in thalys.devices.filter(index__lt=4).values_list("uuid", flat=True))


def test_sample_host_skips_an_unknown_server(monkeypatch):
    monkeypatch.setenv("LABRES_NVML", "fake")

    assert tasks.sample_host("nowhere") == 0
    assert not HostStatus.objects.exists()


def test_sample_host_skips_an_inactive_server(monkeypatch):
    monkeypatch.setenv("LABRES_NVML", "fake")
    ServerFactory(name="retired", active=False)

    assert tasks.sample_host("retired") == 0
    assert not GpuSample.objects.exists()


def test_sample_all_hosts_routes_one_message_per_active_server_to_its_queue(monkeypatch, settings):
    # Sending needs a broker; this checks what would be sent. A real-worker test comes later.
    settings.TELEMETRY_INTERVAL_SECONDS = 20
    ServerFactory(name="thalys")
    ServerFactory(name="kronos")
    ServerFactory(name="retired", active=False)
    sent = []
    monkeypatch.setattr(tasks.sample_host, "apply_async", lambda *args, **kwargs: sent.append((args, kwargs)))

    assert tasks.sample_all_hosts() == 2

    assert sorted(sent, key=lambda call: call[1]["queue"]) == [
        ((), {"args": ["kronos"], "queue": "host.kronos", "expires": 20}),
        ((), {"args": ["thalys"], "queue": "host.thalys", "expires": 20}),
    ]
