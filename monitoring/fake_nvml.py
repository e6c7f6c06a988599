"""A fake NVML for laptops, demos and tests: pynvml's functions, names and errors, with made-up GPUs.

Load rises and falls smoothly with time and carries a little noise, all derived from
(seed, GPU index, time), so a fixed clock gives fixed values. The module itself can be
passed wherever the pynvml module is expected; it delegates to `default`.
"""
import hashlib
import math
import time
from dataclasses import dataclass, field

# Re-exported from pynvml itself, so `except pynvml.NVMLError_GpuIsLost` catches what the fake raises.
from pynvml import (  # noqa: F401
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_INVALID_ARGUMENT,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_FOUND,
    NVML_ERROR_UNINITIALIZED,
    NVML_TEMPERATURE_GPU,
    NVMLError,
    NVMLError_DriverNotLoaded,
    NVMLError_GpuIsLost,
    NVMLError_InvalidArgument,
    NVMLError_LibraryNotFound,
    NVMLError_NoPermission,
    NVMLError_Uninitialized,
)

# load_backend's caller can tell a fake from pynvml by this.
IS_FAKE = True
MIB = 1024 * 1024
# One busy/quiet cycle every 20 minutes: slow enough to look like training, fast enough to see move.
LOAD_PERIOD_S = 1200
# What the driver and CUDA context hold on a GPU with nothing running.
RESERVED_MIB = 420


@dataclass
class FakeProcess:
    """A compute process on a fake GPU: its pid, the user who runs it, the memory it holds and its name."""

    pid: int
    user: str
    memory_mib: int
    name: str = "python3"


@dataclass
class FakeGPU:
    """One fake GPU; `failing` makes every call on its handle raise GPU-is-lost,
    `hides_processes` makes process queries raise no-permission, `stalled` keeps its processes'
    memory but no load (a notebook kernel left open). `uuid` replaces the made-up one."""

    model: str = "NVIDIA A100-SXM4-80GB"
    memory_mib: int = 81920
    power_limit_w: int = 400
    idle_power_w: int = 55
    processes: list = field(default_factory=list)
    failing: bool = False
    hides_processes: bool = False
    stalled: bool = False
    uuid: str | None = None


@dataclass
class _Memory:
    total: int
    free: int
    used: int


@dataclass
class _Utilization:
    gpu: int
    memory: int


@dataclass
class _ProcessInfo:
    pid: int
    usedGpuMemory: int  # pynvml's spelling, in bytes
    gpuInstanceId: int = 0xFFFFFFFF  # "not a MIG instance", as pynvml reports it
    computeInstanceId: int = 0xFFFFFFFF


@dataclass(frozen=True)
class _Handle:
    index: int


class FakeNVML:
    """A host's NVML: GPUs from a scenario, values from (seed, GPU index, clock()).

    `init_error` (e.g. NVML_ERROR_LIBRARY_NOT_FOUND or NVML_ERROR_DRIVER_NOT_LOADED) makes
    nvmlInit fail the way it does on a host without a working driver.
    """

    NVMLError = NVMLError
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU

    def __init__(self, gpus, *, clock=time.time, seed=0, driver_version="580.95.05", init_error=None):
        self.gpus = list(gpus)
        self.clock = clock
        self.seed = seed
        self.driver_version = driver_version
        self.init_error = init_error
        self.init_calls = 0
        self.shutdown_calls = 0
        self._initialized = 0

    # pynvml's functions, same names and parameters.

    def nvmlInit(self):
        self.init_calls += 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self._initialized += 1

    def nvmlShutdown(self):
        self._require_init()
        self.shutdown_calls += 1
        self._initialized -= 1

    def nvmlSystemGetDriverVersion(self):
        self._require_init()
        return self.driver_version

    def nvmlDeviceGetCount(self):
        self._require_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        self._require_init()
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(index)

    def nvmlDeviceGetUUID(self, handle):
        gpu = self._gpu(handle)
        if gpu.uuid:
            return gpu.uuid.encode()
        digest = _digest(self.seed, handle.index, "uuid").hex()
        uuid = f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
        # pynvml 13 returns the UUID as bytes (no str conversion on this one function).
        return uuid.encode()

    def nvmlDeviceGetName(self, handle):
        return self._gpu(handle).model

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):
        gpu = self._gpu(handle)
        total = gpu.memory_mib * MIB
        used = min(total, RESERVED_MIB * MIB + sum(self._process_bytes(handle, p) for p in gpu.processes))
        return _Memory(total=total, free=total - used, used=used)

    def nvmlDeviceGetUtilizationRates(self, handle):
        self._gpu(handle)
        load = self._load(handle)
        memory = load * (0.6 + 0.05 * _noise(self.seed, handle.index, self._tick(), "mem"))
        return _Utilization(gpu=round(100 * load), memory=round(100 * _clamp(memory)))

    def nvmlDeviceGetTemperature(self, handle, sensor):
        self._gpu(handle)
        if sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        celsius = 32 + 50 * self._load(handle) + 2 * _noise(self.seed, handle.index, self._tick(), "temp")
        return round(celsius)

    def nvmlDeviceGetPowerUsage(self, handle):
        gpu = self._gpu(handle)
        watts = gpu.idle_power_w + (gpu.power_limit_w - gpu.idle_power_w) * self._load(handle)
        watts += 4 * _noise(self.seed, handle.index, self._tick(), "power")
        # Real boards overshoot the limit briefly; keep it to the last couple of percent.
        watts = min(max(watts, gpu.idle_power_w * 0.9), gpu.power_limit_w * 1.02)
        return round(watts * 1000)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return self._gpu(handle).power_limit_w * 1000

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        gpu = self._gpu(handle)
        if gpu.hides_processes:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        return [_ProcessInfo(pid=p.pid, usedGpuMemory=self._process_bytes(handle, p)) for p in gpu.processes]

    def nvmlSystemGetProcessName(self, pid):
        self._require_init()
        for gpu in self.gpus:
            for process in gpu.processes:
                if process.pid == pid:
                    return process.name
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    # Not part of NVML: who owns a fake pid, for read_host's owner lookup.

    def owner_of_pid(self, pid):
        """The user name the scenario gives a fake process; None for a pid no fake GPU runs."""
        for gpu in self.gpus:
            for process in gpu.processes:
                if process.pid == pid:
                    return process.user
        return None

    def _require_init(self):
        if self._initialized <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle):
        self._require_init()
        gpu = self.gpus[handle.index]
        if gpu.failing:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        return gpu

    def _tick(self):
        # Noise changes once a second, like NVML's own sampling windows.
        return math.floor(self.clock())

    def _load(self, handle):
        """Busy fraction 0..1: a sine wave with a per-GPU phase plus noise; an idle GPU stays near 0."""
        index = handle.index
        if not self.gpus[index].processes or self.gpus[index].stalled:
            return _clamp(0.01 + 0.01 * _noise(self.seed, index, self._tick(), "idle"))
        phase = 2 * math.pi * (_noise(self.seed, index, 0, "phase") + 1) / 2
        wave = math.sin(2 * math.pi * self.clock() / LOAD_PERIOD_S + phase)
        return _clamp(0.6 + 0.3 * wave + 0.1 * _noise(self.seed, index, self._tick(), "load"))

    def _process_bytes(self, handle, process):
        # Frameworks grow and shrink their caches a little with the load.
        return int(process.memory_mib * (0.9 + 0.1 * self._load(handle))) * MIB


def _digest(*parts):
    return hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=16).digest()


def _noise(seed, index, tick, key):
    """A stable pseudo-random number in [-1, 1] for (seed, index, tick, key)."""
    value = int.from_bytes(_digest(seed, index, tick, key)[:8], "big")
    return value / 2**63 - 1


def _clamp(value, low=0.0, high=1.0):
    return min(max(value, low), high)


def demo_host(*, clock=time.time, seed=0):
    """A believable 4 × A100 host: two users training, one GPU idle, one with two small jobs."""
    return FakeNVML(
        [
            FakeGPU(processes=[FakeProcess(pid=41211, user="alice", memory_mib=61440)]),
            FakeGPU(processes=[FakeProcess(pid=41377, user="bob", memory_mib=30720)]),
            FakeGPU(),
            FakeGPU(processes=[
                FakeProcess(pid=52001, user="carol", memory_mib=12288),
                FakeProcess(pid=52002, user="carol", memory_mib=8192),
            ]),
        ],
        clock=clock,
        seed=seed,
    )


# The module stands in for pynvml: its functions call the default fake host.
default = demo_host()


def nvmlInit():
    return default.nvmlInit()


def nvmlShutdown():
    return default.nvmlShutdown()


def nvmlSystemGetDriverVersion():
    return default.nvmlSystemGetDriverVersion()


def nvmlDeviceGetCount():
    return default.nvmlDeviceGetCount()


def nvmlDeviceGetHandleByIndex(index):
    return default.nvmlDeviceGetHandleByIndex(index)


def nvmlDeviceGetUUID(handle):
    return default.nvmlDeviceGetUUID(handle)


def nvmlDeviceGetName(handle):
    return default.nvmlDeviceGetName(handle)


def nvmlDeviceGetMemoryInfo(handle, version=None):
    return default.nvmlDeviceGetMemoryInfo(handle, version)


def nvmlDeviceGetUtilizationRates(handle):
    return default.nvmlDeviceGetUtilizationRates(handle)


def nvmlDeviceGetTemperature(handle, sensor):
    return default.nvmlDeviceGetTemperature(handle, sensor)


def nvmlDeviceGetPowerUsage(handle):
    return default.nvmlDeviceGetPowerUsage(handle)


def nvmlDeviceGetEnforcedPowerLimit(handle):
    return default.nvmlDeviceGetEnforcedPowerLimit(handle)


def nvmlDeviceGetComputeRunningProcesses(handle):
    return default.nvmlDeviceGetComputeRunningProcesses(handle)


def nvmlSystemGetProcessName(pid):
    return default.nvmlSystemGetProcessName(pid)


def owner_of_pid(pid):
    """The user name the default fake host gives a pid; None for a pid it does not run."""
    return default.owner_of_pid(pid)

