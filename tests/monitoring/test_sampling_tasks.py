"""sample_host reads and stores one host; sample_all_hosts sends one message per active host to its own queue."""
import pytest

from monitoring import tasks
from monitoring.models import GpuSample, HostStatus
from reservations.models import Device
from tests.factories import ServerFactory

pytestmark = pytest.mark.django_db


def test_sample_host_records_samples_for_an_existing_server(thalys, monkeypatch):
    monkeypatch.setenv("LABRES_NVML", "fake")

    ids = list(thalys.devices.order_by("index").values_list("pk", flat=True))

    written = tasks.sample_host("thalys")

    assert written == 8  # the fake host is shaped like thalys: its 8 registered GPUs
    assert GpuSample.objects.filter(device__server=thalys).count() == 8
    status = HostStatus.objects.get(server=thalys)
    assert status.nvml_error == ""
    assert status.agent_version == tasks.agent_version() != ""
    assert list(thalys.devices.order_by("index").values_list("pk", flat=True)) == ids  # the same GPUs, not new ones
    assert all(uuid.startswith("GPU-") for uuid in thalys.devices.values_list("uuid", flat=True))  # UUIDs learnt


def test_sample_host_registers_gpus_of_a_new_server(monkeypatch):
    monkeypatch.setenv("LABRES_NVML", "fake")
    ServerFactory(name="fresh")

    assert tasks.sample_host("fresh") == 4  # onboarding: nobody typed these GPUs in
    assert all(uuid.startswith("GPU-") for uuid in Device.objects.filter(server__name="fresh").values_list("uuid", flat=True))


def test_sample_all_hosts_skips_unmonitored_servers(monkeypatch):
    ServerFactory(name="cpu-only", monitored=False)
    sent = []
    monkeypatch.setattr(tasks.sample_host, "apply_async", lambda *args, **kwargs: sent.append(kwargs["queue"]))

    assert tasks.sample_all_hosts() == 0
    assert sent == []


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
