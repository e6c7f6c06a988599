"""Fake GPU hosts shaped like the servers in the database, for `make demo` (LABRES_NVML=fake).

Each server's fake has its registered GPUs (model, memory, UUID). A GPU booked now runs a
process of its booker's unix user, under load; one booking in five is left idle (memory
held, no load), so the idle-booking detector has something to find. On a server with four
or more GPUs, the highest free GPU runs a process of `dave`, a unix user no member has:
unbooked use. Everything follows from the database and the clock, like a real host.
"""
import time
import zlib

from django.db.models import Q
from django.utils import timezone

from reservations.models import Allocation, Profile

from .fake_nvml import FakeGPU, FakeNVML, FakeProcess

UNBOOKED_USER = "dave"
IDLE_ONE_IN = 5
DEFAULT_GPUS = 4  # a server with no GPUs registered yet shows up with this many (onboarding)


def fake_host_for(server, *, clock=time.time, now=None):
    """A FakeNVML for `server` as it would look now; a server with no GPUs yet gets DEFAULT_GPUS A100s."""
    now = now or timezone.now()
    devices = list(server.devices.filter(active=True).order_by("index"))
    seed = zlib.crc32(server.name.encode())
    if not devices:
        return FakeNVML([FakeGPU() for _ in range(DEFAULT_GPUS)], clock=clock, seed=seed)

    held = dict(
        Allocation.objects.active().at(now).filter(unit__device__in=devices).values_list("unit__device_id", "booking_id")
    )
    owners = dict(
        Allocation.objects.filter(booking_id__in=set(held.values()))
        .values_list("booking_id", "booking__user_id")
        .distinct()
    )
    unix = dict(
        Profile.objects.filter(user_id__in=set(owners.values())).filter(~Q(unix_username="")).values_list("user_id", "unix_username")
    )
    free = [device for device in devices if device.pk not in held]
    gpus = []
    for device in devices:
        gpu = FakeGPU(model=device.model or "NVIDIA A100-SXM4-80GB", memory_mib=device.memory_mib or 81920, uuid=device.uuid or None)
        booking_id = held.get(device.pk)
        if booking_id is not None:
            user = unix.get(owners.get(booking_id), f"uid{owners.get(booking_id)}")
            gpu.processes = [FakeProcess(pid=20000 + booking_id * 8 + device.index, user=user, memory_mib=int(gpu.memory_mib * 0.7))]
            gpu.stalled = booking_id % IDLE_ONE_IN == 0
        elif len(devices) >= 4 and free and device == free[-1]:
            gpu.processes = [FakeProcess(pid=31337, user=UNBOOKED_USER, memory_mib=int(gpu.memory_mib * 0.3))]
        gpus.append(gpu)
    return FakeNVML(gpus, clock=clock, seed=seed)
