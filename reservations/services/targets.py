"""What a booking holds: a server's GPUs, a whole server or a room, found by name or object.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from .. import queries
from ..errors import BookingError
from ..models import Device, Room, Server, Unit
from ..parsing import PROSE, ParseError, describe_target, format_device_set, parse_device_set

if TYPE_CHECKING:
    from django.db.models import QuerySet

Place = TypeVar("Place", Server, Room)


@dataclass(frozen=True)
class Target:
    """What a booking holds: some GPUs of a server, a whole server, or a room."""

    server: Server | None
    devices: tuple[Device | None, ...]
    room: Room | None
    units: tuple[Unit, ...]

    @property
    def whole_server(self) -> bool:
        return self.server is not None and not self.devices


def resolve_target(
    *, server: Server | str | None = None, devices: str | Sequence[int] | None = None, room: Room | str | None = None,
) -> Target:
    """Turn a server (name or object) plus a device set, or a room, into the units to hold.

    `devices` is a device-set string ('0-2,5'), a list of indices, or None for the whole server.
    """
    if (server is None) == (room is None):
        raise BookingError("Book either a server (with or without GPUs) or a room, not both and not neither.", field="server")
    if room is not None:
        room = get_bookable_room(room)
        return Target(server=None, devices=(), room=room, units=(room.unit,))
    assert server is not None, "a server or a room, and the room returned above"
    indices = None if devices is None or devices == "" else parse_indices(devices)
    units = units_of(server, indices)
    return Target(
        server=units[0].server,
        devices=tuple(unit.device for unit in units if indices is not None),
        room=None,
        units=tuple(sorted(units, key=lambda unit: unit.pk)),
    )


def units_of(server: Server | str, indices: list[int] | None) -> list[Unit]:
    """The units a server booking holds: the asked GPUs, or for None the server and all its GPUs.

    One query when all is well (queries.server_units); the precise complaint (unknown server,
    no such GPU, out of service) is worked out only when something is wrong.
    """
    units = queries.server_units(server, indices)
    found = units[0].server if units else None
    well = bool(units) and found.active  # type: ignore[union-attr]  # a unit found by its server has that server
    if indices is not None:
        well = well and len(units) == len(indices) and all(unit.device.active for unit in units)  # type: ignore[union-attr]  # GPUs have a device
    if not well:
        found = get_bookable_server(server)  # raises for an unknown or retired server
        if indices is not None:
            check_devices(found, indices)  # raises for a missing or retired GPU
        raise BookingError(f"Server {found.name} changed while booking; please try again.", field="server")
    return units


def get_bookable_server(server: Server | str | None) -> Server:
    """The active server of this name (or this server); raises BookingError naming the known ones."""
    return _bookable(Server, server, Server.objects.all(), "server")


def get_bookable_room(room: Room | str | None) -> Room:
    """The active room of this name (or this room); raises BookingError naming the known ones."""
    return _bookable(Room, room, Room.objects.select_related("unit"), "room")


def _bookable(model: type[Place], given: Place | str | None, rows: QuerySet[Place], kind: str) -> Place:
    if isinstance(given, model):
        found = given
    else:
        name = str(given).strip()
        match = rows.filter(name__iexact=name).first()
        if match is None:
            known = ", ".join(model.objects.filter(active=True).values_list("name", flat=True)) or "none yet"
            raise BookingError(f"There is no {kind} '{name}'; {kind}s: {known}.", field=kind)
        found = match
    if not found.active:
        raise BookingError(f"{kind.capitalize()} {found.name} is out of service and cannot be booked.", field=kind)
    return found


def parse_indices(devices: str | Iterable[int]) -> list[int]:
    try:
        return parse_device_set(devices) if isinstance(devices, str) else sorted({int(i) for i in devices})
    except (ParseError, TypeError, ValueError) as error:
        message = str(error) if isinstance(error, ParseError) else "Devices must be GPU indices, e.g. 0-2,5."
        raise BookingError(message, field="devices") from None


def check_devices(server: Server, indices: list[int]) -> None:
    if not indices:
        raise BookingError("Name at least one GPU, e.g. 0 or 0-1, or book the whole server.", field="devices")
    found = {d.index: d for d in Device.objects.filter(server=server)}
    if not found:
        raise BookingError(f"{server.name} has no GPUs; book the whole server instead (just '{server.name}').", field="devices")
    missing = [i for i in indices if i not in found]
    if missing:
        has = f"it has {format_device_set(found)}"
        noun = "device" if len(missing) == 1 else "devices"
        verb = "does" if len(missing) == 1 else "do"
        raise BookingError(f"{noun.capitalize()} {format_device_set(missing)} {verb} not exist on {server.name} ({has}).", field="devices")
    inactive = [i for i in indices if not found[i].active]
    if inactive:
        gpus, verb = describe_target(server.name, inactive, style=PROSE), "is" if len(inactive) == 1 else "are"
        raise BookingError(f"{gpus} {verb} out of service and cannot be booked.", field="devices")
