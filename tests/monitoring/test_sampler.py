"""read_host: one reading of a host's GPUs, whatever NVML does."""
import getpass
import json
import os
from datetime import UTC, datetime

import pynvml

from monitoring import fake_nvml
from monitoring.fake_nvml import NVML_ERROR_NOT_FOUND, FakeGPU, FakeNVML, FakeProcess, NVMLError
from monitoring.sampler import owner_of_pid, read_host

NOW = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
T0 = NOW.timestamp()


def host(*gpus, **options):
    return FakeNVML(list(gpus), clock=lambda: T0, **options)


def training(pid=4242, user="alice", memory_mib=30000, **options):
    return FakeGPU(processes=[FakeProcess(pid=pid, user=user, memory_mib=memory_mib)], **options)


def test_read_host_reads_every_gpu_of_a_healthy_host():
    reading = read_host(host(training(), FakeGPU(), training(pid=77, user="bob")), now=NOW)

    assert reading.nvml_error is None
    assert reading.driver_version == "580.95.05"
    assert reading.taken_at == NOW
    assert [gpu.index for gpu in reading.gpus] == [0, 1, 2]
    assert all(gpu.error is None for gpu in reading.gpus)
    first = reading.gpus[0]
    assert first.uuid.startswith("GPU-")
    assert first.model == "NVIDIA A100-SXM4-80GB"
    assert first.memory_total_mib == 81920
    assert 0 < first.memory_used_mib < first.memory_total_mib
    assert first.gpu_util is not None and first.temperature_c is not None
    assert first.power_limit_w == 400.0
    assert 0 < first.power_w <= 420


def test_read_host_lists_processes_with_their_owners():
    reading = read_host(host(training(pid=4242, user="alice", memory_mib=30000)), now=NOW)

    [process] = reading.gpus[0].processes
    assert process.pid == 4242
    assert process.user == "alice"
    assert process.name == "python3"
    assert 27000 <= process.used_memory_mib <= 30000


def test_an_injected_owner_lookup_names_the_users():
    reading = read_host(host(training(pid=4242)), now=NOW, owner_of_pid=lambda pid: f"uid-of-{pid}")

    assert reading.gpus[0].processes[0].user == "uid-of-4242"


def test_a_lost_gpu_is_reported_with_its_error_while_the_others_are_read():
    reading = read_host(host(training(), FakeGPU(failing=True), training()), now=NOW)

    lost = reading.gpus[1]
    assert lost.error == "GPU is lost"
    assert lost.gpu_util is None and lost.processes is None
    assert [gpu.error for gpu in (reading.gpus[0], reading.gpus[2])] == [None, None]
    assert reading.gpus[2].gpu_util is not None


def test_hidden_processes_give_none_with_a_note_and_metrics_still_present():
    gpu = read_host(host(training(hides_processes=True)), now=NOW).gpus[0]

    assert gpu.processes is None
    assert gpu.processes_note == "Processes not visible: Insufficient Permissions"
    assert gpu.error is None
    assert gpu.gpu_util is not None and gpu.memory_used_mib > 0


def test_a_host_without_nvml_gives_nvml_error_and_no_gpus():
    for code, message in [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "NVML Shared Library Not Found"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "Driver Not Loaded"),
    ]:
        fake = host(training(), init_error=code)

        reading = read_host(fake, now=NOW)

        assert reading.nvml_error == message
        assert reading.gpus == []
        assert reading.driver_version is None
        assert fake.shutdown_calls == 0


def test_nvml_is_shut_down_even_when_a_gpu_errors():
    fake = host(FakeGPU(failing=True), training())

    read_host(fake, now=NOW)

    assert (fake.init_calls, fake.shutdown_calls) == (1, 1)


def test_nvml_is_shut_down_when_the_host_fails_after_init():
    fake = host(training())

    def count_fails():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)

    fake.nvmlDeviceGetCount = count_fails

    reading = read_host(fake, now=NOW)

    assert reading.nvml_error == "Unknown Error"
    assert fake.shutdown_calls == 1


def test_the_fake_module_stands_in_for_pynvml():
    reading = read_host(fake_nvml, now=NOW)

    assert reading.nvml_error is None
    assert len(reading.gpus) == len(fake_nvml.default.gpus)
    users = {p.user for gpu in reading.gpus for p in gpu.processes}
    assert users == {"alice", "bob", "carol"}


def test_a_reading_turns_into_json():
    reading = read_host(host(training(), FakeGPU(failing=True), training(hides_processes=True)), now=NOW)

    data = json.loads(json.dumps(reading.as_dict()))

    assert data["taken_at"] == "2026-01-01T09:00:00+00:00"
    assert data["gpus"][0]["processes"][0] == {
        "pid": 4242,
        "used_memory_mib": reading.gpus[0].processes[0].used_memory_mib,
        "user": "alice",
        "name": "python3",
    }
    assert data["gpus"][1]["error"] == "GPU is lost"
    assert data["gpus"][2]["processes"] is None


def test_owner_of_pid_names_the_user_of_this_process():
    assert owner_of_pid(os.getpid()) == getpass.getuser()


def test_owner_of_pid_of_a_missing_process_is_none():
    assert owner_of_pid(2**31 - 1) is None


def test_process_names_are_the_program_without_its_path():
    fake = host(FakeGPU(processes=[FakeProcess(pid=77, user="bob", memory_mib=100, name="/opt/conda/bin/python3.11")]))

    reading = read_host(fake, now=NOW)

    assert reading.gpus[0].processes[0].name == "python3.11"


def test_a_process_nvml_cannot_name_has_no_name():
    fake = host(training(pid=4242))
    fake.nvmlSystemGetProcessName = lambda pid: (_ for _ in ()).throw(NVMLError(NVML_ERROR_NOT_FOUND))

    reading = read_host(fake, now=NOW)

    assert reading.gpus[0].processes[0].name is None
