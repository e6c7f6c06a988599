"""Helpers for monitoring tests: readings from a fake host, stored the way a host agent stores them."""
import itertools
from datetime import timedelta

from django.utils import timezone

from monitoring.fake_nvml import FakeGPU, FakeNVML, FakeProcess
from monitoring.models import GpuSample
from monitoring.sampler import read_host
from monitoring.services import record_reading
from reservations import services


def just_now():
    """A second ago: a reading taken then is the host's latest and fresh."""
    return timezone.now().replace(microsecond=0) - timedelta(seconds=1)


_pids = itertools.count(1000)


def gpu(*users, busy=True, memory_mib=20000, **options):
    """A FakeGPU running one process per unix user (pids unique, as on a host); busy=False keeps the memory but no load."""
    processes = [FakeProcess(pid=next(_pids), user=user, memory_mib=memory_mib) for user in users]
    return FakeGPU(processes=processes, stalled=not busy, **options)


def report(server, gpus, at, **fake_options):
    """Store one reading of `server` taken at `at` from a fake host with these GPUs."""
    fake = FakeNVML(gpus, clock=lambda: at.timestamp(), **fake_options)
    return record_reading(server, read_host(fake, now=at))


def utilization_series(device, start, end, util, *, step=15):
    """Raw samples of `device` every `step` seconds in [start, end) at a fixed utilization."""
    rows, at = [], start
    while at < end:
        rows.append(GpuSample(device=device, taken_at=at, gpu_util=util, mem_util=util, memory_used_mib=1000 + util,
                              temperature_c=40, power_w=100.0, power_limit_w=400.0, processes=[]))
        at += timedelta(seconds=step)
    GpuSample.objects.bulk_create(rows)
    return rows


def running_booking(user, server, devices, *, started_ago, hours=2, purpose="training"):
    """A booking of `devices` on `server` that started `started_ago` before now."""
    start = timezone.now() - started_ago
    return services.create_booking(user, start=start, end=start + timedelta(hours=hours), purpose=purpose,
                                   server=server.name, devices=devices, now=start)
