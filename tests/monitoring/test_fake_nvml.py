"""The fake NVML: pynvml's interface and errors, deterministic and physically plausible values."""
import inspect
import re

import pynvml
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitoring import fake_nvml, sampler
from monitoring.fake_nvml import FakeGPU, FakeNVML, FakeProcess
from monitoring.nvml import load_backend

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


def sampler_calls():
    """Every nvml* function the sampler calls, read from its source so the list cannot drift."""
    return sorted(set(re.findall(r"nvml\.(nvml\w+)", inspect.getsource(sampler))))


def busy_host(clock=lambda: T0, seed=0):
    gpus = [FakeGPU(processes=[FakeProcess(pid=100 + i, user="alice", memory_mib=20000)]) for i in range(2)]
    return FakeNVML(gpus + [FakeGPU(model="NVIDIA H100 80GB HBM3", power_limit_w=700)], clock=clock, seed=seed)


def read_gpu(host, index):
    host.nvmlInit()
    handle = host.nvmlDeviceGetHandleByIndex(index)
    values = {
        "util": host.nvmlDeviceGetUtilizationRates(handle),
        "memory": host.nvmlDeviceGetMemoryInfo(handle),
        "temperature": host.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
        "power_mw": host.nvmlDeviceGetPowerUsage(handle),
        "limit_mw": host.nvmlDeviceGetEnforcedPowerLimit(handle),
        "processes": host.nvmlDeviceGetComputeRunningProcesses(handle),
    }
    host.nvmlShutdown()
    return values


def test_every_function_the_sampler_calls_exists_in_pynvml_and_the_fake_with_the_same_parameters():
    assert len(sampler_calls()) >= 12
    for name in sampler_calls():
        real = inspect.signature(getattr(pynvml, name))
        assert inspect.signature(getattr(fake_nvml, name)).parameters.keys() == real.parameters.keys(), name
        assert inspect.signature(getattr(fake_nvml.default, name)).parameters.keys() == real.parameters.keys(), name


def test_the_fake_raises_pynvml_own_error_classes():
    assert fake_nvml.NVMLError is pynvml.NVMLError
    host = FakeNVML([FakeGPU(failing=True)])
    host.nvmlInit()
    handle = host.nvmlDeviceGetHandleByIndex(0)

    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        host.nvmlDeviceGetName(handle)


def test_the_fake_returns_the_same_types_as_pynvml_13():
    # In this pynvml, names and the driver version come back as str but the UUID as bytes.
    host = busy_host()
    host.nvmlInit()
    handle = host.nvmlDeviceGetHandleByIndex(0)

    assert isinstance(host.nvmlSystemGetDriverVersion(), str)
    assert isinstance(host.nvmlDeviceGetName(handle), str)
    assert host.nvmlDeviceGetUUID(handle).startswith(b"GPU-")
    assert isinstance(host.nvmlDeviceGetPowerUsage(handle), int)


def test_calls_before_init_raise_uninitialized():
    host = busy_host()

    with pytest.raises(pynvml.NVMLError_Uninitialized):
        host.nvmlDeviceGetCount()


def test_a_fixed_clock_gives_the_same_values():
    first, second = read_gpu(busy_host(), 0), read_gpu(busy_host(), 0)

    assert first == second


def test_another_time_gives_other_values():
    now, later = read_gpu(busy_host(), 0), read_gpu(busy_host(clock=lambda: T0 + 300), 0)

    assert (now["util"], now["power_mw"]) != (later["util"], later["power_mw"])


def test_gpus_of_one_host_do_not_move_in_lockstep():
    host = busy_host()

    assert read_gpu(host, 0)["util"] != read_gpu(host, 1)["util"]


def test_a_gpu_without_processes_is_idle():
    values = read_gpu(busy_host(), 2)

    assert values["util"].gpu <= 2
    assert values["processes"] == []


@given(
    now=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    seed=st.integers(min_value=0, max_value=2**32),
    index=st.integers(min_value=0, max_value=2),
)
def test_values_stay_within_physical_bounds(now, seed, index):
    values = read_gpu(busy_host(clock=lambda: now, seed=seed), index)

    assert 0 <= values["util"].gpu <= 100
    assert 0 <= values["util"].memory <= 100
    memory = values["memory"]
    assert 0 <= memory.used <= memory.total
    assert memory.used + memory.free == memory.total
    assert 0 < values["power_mw"] <= values["limit_mw"] * 1.05
    assert 20 <= values["temperature"] <= 95
    assert sum(p.usedGpuMemory for p in values["processes"]) <= memory.used


def test_a_host_without_nvml_fails_at_init_like_pynvml():
    host = FakeNVML([FakeGPU()], init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    with pytest.raises(pynvml.NVMLError_DriverNotLoaded):
        host.nvmlInit()


def test_hidden_processes_raise_no_permission():
    host = FakeNVML([FakeGPU(hides_processes=True)])
    host.nvmlInit()

    with pytest.raises(pynvml.NVMLError_NoPermission):
        host.nvmlDeviceGetComputeRunningProcesses(host.nvmlDeviceGetHandleByIndex(0))


def test_the_fake_names_the_owner_of_its_processes():
    host = busy_host()

    assert host.owner_of_pid(101) == "alice"
    assert host.owner_of_pid(999) is None


def test_load_backend_fake_gives_the_fake_module():
    assert load_backend("fake") is fake_nvml


def test_load_backend_real_gives_pynvml():
    assert load_backend("real") is pynvml


def test_load_backend_reads_labres_nvml(monkeypatch):
    monkeypatch.setenv("LABRES_NVML", "fake")

    assert load_backend() is fake_nvml


def test_load_backend_defaults_to_real(monkeypatch):
    monkeypatch.delenv("LABRES_NVML", raising=False)

    assert load_backend() is pynvml


def test_load_backend_refuses_an_unknown_name():
    with pytest.raises(ValueError, match="'cuda' is not an NVML backend"):
        load_backend("cuda")
