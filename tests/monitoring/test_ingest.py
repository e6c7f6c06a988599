"""record_reading: a host's reading becomes its status, its GPUs and one sample per GPU."""
from datetime import UTC, datetime, timedelta

import pytest

from monitoring.fake_nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeGPU, FakeNVML, demo_host
from monitoring.models import GpuSample, HostStatus
from monitoring.sampler import read_host
from monitoring.services import record_reading
from reservations.models import Device, Unit
from tests.factories import ServerFactory

NOW = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
T0 = NOW.timestamp()

pytestmark = pytest.mark.django_db


def demo_reading(now=NOW):
    return read_host(demo_host(clock=lambda: now.timestamp()), now=now)


@pytest.fixture
def bare():
    """A server nobody has entered GPUs for."""
    return ServerFactory(name="bare")


def test_first_reading_sets_the_host_status(bare):
    record_reading(bare, demo_reading())

    status = HostStatus.objects.get(server=bare)
    assert status.last_seen_at == NOW
    assert status.driver_version == "580.95.05"
    assert status.nvml_error == ""


def test_first_reading_registers_the_gpus_with_their_uuids_and_units(bare):
    reading = demo_reading()

    record_reading(bare, reading)

    devices = list(bare.devices.order_by("index"))
    assert [d.index for d in devices] == [0, 1, 2, 3]
    assert [d.uuid for d in devices] == [gpu.uuid for gpu in reading.gpus]
    assert all(d.uuid.startswith("GPU-") for d in devices)
    assert {d.model for d in devices} == {"NVIDIA A100-SXM4-80GB"}
    assert {d.memory_mib for d in devices} == {81920}
    assert Unit.objects.filter(kind=Unit.Kind.GPU, device__in=devices, server=bare).count() == 4


def test_first_reading_writes_one_sample_per_gpu(bare):
    reading = demo_reading()

    written = record_reading(bare, reading)

    assert written == 4
    samples = {s.device.index: s for s in GpuSample.objects.filter(device__server=bare)}
    assert sorted(samples) == [0, 1, 2, 3]
    assert all(s.taken_at == NOW and s.error == "" for s in samples.values())
    assert samples[0].gpu_util == reading.gpus[0].gpu_util
    assert samples[0].memory_used_mib == reading.gpus[0].memory_used_mib
    assert samples[0].power_limit_w == 400.0
    assert samples[0].processes == [{"pid": 41211, "used_memory_mib": reading.gpus[0].processes[0].used_memory_mib, "user": "alice", "name": "python3"}]
    assert samples[2].processes == []


def test_second_reading_adds_samples_but_no_devices(bare):
    record_reading(bare, demo_reading())

    written = record_reading(bare, demo_reading(NOW + timedelta(seconds=15)))

    assert written == 4
    assert bare.devices.count() == 4
    assert Unit.objects.filter(kind=Unit.Kind.GPU, server=bare).count() == 4
    assert GpuSample.objects.filter(device__server=bare).count() == 8
    assert HostStatus.objects.get(server=bare).last_seen_at == NOW + timedelta(seconds=15)


def test_reading_matches_existing_devices_by_index_and_fills_in_their_uuids(db):
    server = ServerFactory(name="known", gpus=4)
    before = set(server.devices.values_list("pk", flat=True))
    reading = demo_reading()

    record_reading(server, reading)

    assert set(server.devices.values_list("pk", flat=True)) == before
    assert list(server.devices.order_by("index").values_list("uuid", flat=True)) == [gpu.uuid for gpu in reading.gpus]


def test_changed_model_updates_the_device(bare):
    record_reading(bare, demo_reading())
    swapped = demo_host(clock=lambda: T0)
    swapped.gpus[1] = FakeGPU(model="NVIDIA H100 80GB HBM3", memory_mib=81559)

    record_reading(bare, read_host(swapped, now=NOW + timedelta(seconds=15)))

    device = bare.devices.get(index=1)
    assert (device.model, device.memory_mib) == ("NVIDIA H100 80GB HBM3", 81559)
    assert bare.devices.count() == 4


def test_lost_gpu_writes_a_sample_with_the_error(bare):
    record_reading(bare, read_host(FakeNVML([FakeGPU(), FakeGPU()], clock=lambda: T0), now=NOW))
    later = NOW + timedelta(seconds=15)

    written = record_reading(bare, read_host(FakeNVML([FakeGPU(), FakeGPU(failing=True)], clock=lambda: T0), now=later))

    assert written == 2
    lost = GpuSample.objects.get(device__server=bare, device__index=1, taken_at=later)
    assert "lost" in lost.error.lower()
    assert (lost.gpu_util, lost.memory_used_mib, lost.power_w, lost.processes) == (None, None, None, None)
    assert bare.devices.get(index=1).uuid != ""  # the error reading has no UUID and does not erase the known one
    assert GpuSample.objects.get(device__server=bare, device__index=0, taken_at=later).error == ""


def test_host_without_nvml_records_the_error_and_no_samples(bare):
    reading = read_host(FakeNVML([FakeGPU()], init_error=NVML_ERROR_LIBRARY_NOT_FOUND), now=NOW)

    written = record_reading(bare, reading)

    assert written == 0
    status = HostStatus.objects.get(server=bare)
    assert status.nvml_error != ""
    assert status.last_seen_at == NOW
    assert not GpuSample.objects.exists()
    assert not Device.objects.filter(server=bare).exists()


def test_a_gpu_moved_from_another_server_is_stored_and_the_old_device_forgets_its_uuid(db):
    old_home = ServerFactory(name="old-home")
    new_home = ServerFactory(name="new-home")
    record_reading(old_home, demo_reading())
    moved_uuid = old_home.devices.get(index=0).uuid

    written = record_reading(new_home, demo_reading(NOW + timedelta(seconds=15)))

    assert written == 4
    assert new_home.devices.get(index=0).uuid == moved_uuid
    assert old_home.devices.get(index=0).uuid == ""
    assert GpuSample.objects.filter(device__server=old_home).count() == 4  # its history stays
