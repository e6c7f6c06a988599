"""Servers' GPUs coming into the lab: from the admin, or from a host agent that finds a new one."""
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..locking import lock
from ..models import Allocation, Booking, Device, Server, Unit


def register_device(server: Server, index: int, **fields: Any) -> Device:
    """Add GPU `index` to `server` (fields: model, memory_mib, uuid, active) with its Unit; returns the Device.

    A whole-server booking holds every GPU of its server, including one added later: each one
    running or to come gets an allocation of the new GPU, in the same transaction.
    """
    with transaction.atomic():
        device = Device.objects.create(server=server, index=index, **fields)  # Device.save makes its Unit
        server_unit = Unit.objects.filter(kind=Unit.Kind.SERVER, server=server).first()
        if server_unit is not None:
            lock(server_unit)  # a whole-server booking being written now holds it: wait for it, then see it
        holding = Booking.objects.holding().filter(server=server, whole_server=True, end__gt=timezone.now())
        Allocation.objects.bulk_create(
            Allocation(booking=booking, unit=device.unit, start=booking.start, end=booking.end) for booking in holding
        )
    return device
