"""What a booking holds: a server's GPUs, a whole server or a room, found by name or object.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .. import queries
from ..errors import BookingError
from ..models import Device, Room, Server, Unit
from ..parsing import PROSE, ParseError, describe_target, format_device_set, parse_device_set


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
    if not isinstance(server, Server):
        name = str(server).strip()
        server = Server.objects.filter(name__iexact=name).first()
        if server is None:
            known = ", ".join(Server.objects.filter(active=True).values_list("name", flat=True)) or "none yet"
            raise BookingError(f"There is no server '{name}'; servers: {known}.", field="server")
    if not server.active:
        raise BookingError(f"Server {server.name} is out of service and cannot be booked.", field="server")
    return server


def get_bookable_room(room: Room | str | None) -> Room:
    if not isinstance(room, Room):
        name = str(room).strip()
        room = Room.objects.filter(name__iexact=name).select_related("unit").first()
        if room is None:
            known = ", ".join(Room.objects.filter(active=True).values_list("name", flat=True)) or "none yet"
            raise BookingError(f"There is no room '{name}'; rooms: {known}.", field="room")
    if not room.active:
        raise BookingError(f"Room {room.name} is out of service and cannot be booked.", field="room")
    return room


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
