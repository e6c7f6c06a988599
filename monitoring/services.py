"""Storing what a host agent read: its status, the GPUs it has, and one sample per GPU."""
import logging

from django.db import transaction

from reservations.models import Device, Server
from reservations.services import register_device

from .models import GpuSample, HostStatus

logger = logging.getLogger(__name__)


def record_reading(server, reading, *, agent_version=""):
    """Store a sampler.HostReading of `server` in one transaction; returns the number of samples written."""
    with transaction.atomic():
        # One reading of a host at a time: a second one waits here rather than racing to create its GPUs.
        Server.objects.select_for_update().filter(pk=server.pk).first()
        HostStatus.objects.update_or_create(
            server=server,
            defaults={
                "last_seen_at": reading.taken_at,
                "driver_version": reading.driver_version or "",
                "nvml_error": reading.nvml_error or "",
                "agent_version": agent_version,
            },
        )
        devices = register_devices(server, reading.gpus)
        samples = [_sample(devices[gpu.index], reading.taken_at, gpu) for gpu in reading.gpus]
        GpuSample.objects.bulk_create(samples)
        return len(samples)


def register_devices(server, gpus):
    """The Device of each GPU reading, by its index in the reading; creates missing ones (with their Units)
    and updates model, memory and UUID where the reading says otherwise."""
    _forget_moved_gpus(server, [gpu.uuid for gpu in gpus if gpu.uuid])
    known = list(server.devices.all())
    by_uuid = {device.uuid: device for device in known if device.uuid}
    by_index = {device.index: device for device in known}
    devices = {}
    for gpu in gpus:
        device = (gpu.uuid and by_uuid.get(gpu.uuid)) or by_index.get(gpu.index)
        if device is None:
            # With its Unit, and held by the whole-server bookings of its server that run or are to come.
            device = register_device(server, gpu.index, uuid=gpu.uuid or "", model=gpu.model or "", memory_mib=gpu.memory_total_mib)
        else:
            _update_device(device, gpu)
        devices[gpu.index] = device
    return devices


def _forget_moved_gpus(server, uuids):
    """A GPU that now reports from `server` was moved here: its old device elsewhere loses the UUID
    (keeping its history), so the reading is stored rather than refused by the unique UUID."""
    moved = Device.objects.filter(uuid__in=uuids).exclude(server=server).select_related("server")
    for device in moved:
        logger.warning("GPU %s now reports from %s; it was GPU %s on %s.", device.uuid, server.name, device.index, device.server.name)
        device.uuid = ""
        device.save(update_fields=["uuid"])


def _update_device(device, gpu):
    """Save what the reading says changed; a GPU that could not be read (no identity) changes nothing."""
    changed = []
    for field, value in (("uuid", gpu.uuid), ("model", gpu.model), ("memory_mib", gpu.memory_total_mib)):
        if value is not None and value != "" and getattr(device, field) != value:
            setattr(device, field, value)
            changed.append(field)
    if changed:
        device.save(update_fields=changed)


def _sample(device, taken_at, gpu):
    """One unsaved GpuSample from a GpuReading; an error reading gives null metrics and the error."""
    return GpuSample(
        device=device,
        taken_at=taken_at,
        gpu_util=gpu.gpu_util,
        mem_util=gpu.mem_util,
        memory_used_mib=gpu.memory_used_mib,
        temperature_c=gpu.temperature_c,
        power_w=gpu.power_w,
        power_limit_w=gpu.power_limit_w,
        processes=None if gpu.processes is None else [process._asdict() for process in gpu.processes],
        processes_note=gpu.processes_note or "",
        error=gpu.error or "",
    )
