"""One reading of a host's GPUs through NVML: identity, load, memory, heat, power and processes.

read_host never raises for NVML trouble: a host without NVML, a lost GPU or hidden processes
come back as messages inside the reading, so the caller can store and show them.
"""
import os
import pwd
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

import pynvml

MIB = 1024 * 1024


class GpuProcess(NamedTuple):
    pid: int
    used_memory_mib: int | None  # None where the driver cannot tell (WDDM)
    user: str | None
    name: str | None = None  # the program, e.g. python3; None when NVML cannot tell


@dataclass
class GpuReading:
    """One GPU at one moment: the metrics, or `error` with NVML's message when it could not be read."""

    index: int
    uuid: str | None = None
    model: str | None = None
    memory_total_mib: int | None = None
    gpu_util: int | None = None
    mem_util: int | None = None
    memory_used_mib: int | None = None
    temperature_c: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    processes: list[GpuProcess] | None = None
    processes_note: str | None = None
    error: str | None = None

    def as_dict(self):
        """Plain JSON types, processes as {pid, used_memory_mib, user, name}."""
        data = asdict(self)
        if self.processes is not None:
            data["processes"] = [process._asdict() for process in self.processes]
        return data


@dataclass
class HostReading:
    """A host at one moment: the driver, NVML's error if it is unavailable, and its GPUs."""

    taken_at: datetime
    driver_version: str | None = None
    nvml_error: str | None = None
    gpus: list[GpuReading] = field(default_factory=list)

    def as_dict(self):
        """Plain JSON types, taken_at as ISO 8601."""
        return {
            "taken_at": self.taken_at.isoformat(),
            "driver_version": self.driver_version,
            "nvml_error": self.nvml_error,
            "gpus": [gpu.as_dict() for gpu in self.gpus],
        }


def owner_of_pid(pid):
    """The user name that runs pid, from /proc/<pid>/status; None when the process is gone or the uid unknown."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("Uid:"):
                    return pwd.getpwuid(int(line.split()[1])).pw_name
    except (OSError, KeyError, ValueError, IndexError):
        return None
    return None


def read_host(nvml, *, now=None, owner_of_pid=None):
    """Read every GPU of this host through `nvml` (pynvml or a fake); one GPU failing does not stop the others.

    owner_of_pid maps a pid to a user name; by default the backend's own (the fake has one), else /proc.
    """
    reading = HostReading(taken_at=now or datetime.now(UTC))
    lookup = owner_of_pid or _default_owner_lookup(nvml)
    try:
        nvml.nvmlInit()
    except pynvml.NVMLError as error:
        reading.nvml_error = str(error)
        return reading
    try:
        reading.driver_version = _optional(nvml.nvmlSystemGetDriverVersion)
        count = nvml.nvmlDeviceGetCount()
        reading.gpus = [_read_gpu(nvml, index, lookup) for index in range(count)]
    except pynvml.NVMLError as error:
        reading.nvml_error = str(error)
    finally:
        try:
            nvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass  # the reading is taken; a failed shutdown changes nothing in it
    return reading


def _default_owner_lookup(nvml):
    # A fake host's pids are made up: /proc would name whoever happens to hold that pid here.
    return getattr(nvml, "owner_of_pid", owner_of_pid)


def _read_gpu(nvml, index, owner_of_pid):
    reading = GpuReading(index=index)
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        reading.uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        reading.model = _text(nvml.nvmlDeviceGetName(handle))
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        utilization = nvml.nvmlDeviceGetUtilizationRates(handle)
        temperature = _optional(nvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU)
        power_mw = _optional(nvml.nvmlDeviceGetPowerUsage, handle)
        limit_mw = _optional(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        processes, note = _read_processes(nvml, handle, owner_of_pid)
    except pynvml.NVMLError as error:
        reading.error = str(error)
        return reading
    reading.memory_total_mib = memory.total // MIB
    reading.memory_used_mib = memory.used // MIB
    reading.gpu_util = utilization.gpu
    reading.mem_util = utilization.memory
    reading.temperature_c = temperature
    reading.power_w = None if power_mw is None else round(power_mw / 1000, 1)
    reading.power_limit_w = None if limit_mw is None else round(limit_mw / 1000, 1)
    reading.processes = processes
    reading.processes_note = note
    return reading


def _read_processes(nvml, handle, owner_of_pid):
    """(processes, None), or (None, why) when NVML will not say which processes run here."""
    try:
        infos = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except (pynvml.NVMLError_NoPermission, pynvml.NVMLError_NotSupported) as error:
        return None, f"Processes not visible: {error}"
    processes = [
        GpuProcess(
            pid=info.pid,
            used_memory_mib=None if info.usedGpuMemory is None else info.usedGpuMemory // MIB,
            user=owner_of_pid(info.pid),
            name=_process_name(nvml, info.pid),
        )
        for info in infos
    ]
    return processes, None


def _process_name(nvml, pid):
    """The program's name (NVML gives a path: keep its last part); None when the process is gone or hidden."""
    try:
        name = _text(nvml.nvmlSystemGetProcessName(pid))
    except pynvml.NVMLError:
        return None
    return os.path.basename((name or "").strip()) or None


def _optional(call, *args):
    # Some boards do not report power or temperature; that is a missing value, not a broken GPU.
    try:
        return call(*args)
    except pynvml.NVMLError_NotSupported:
        return None


def _text(value):
    # pynvml 13 gives the UUID as bytes and names as str.
    return value.decode() if isinstance(value, bytes) else value
