"""`labres run`: hold units exactly as long as a command runs.

The booking is claimed for a short lease and renewed shortly before it ends while the
command runs (never past -d, when given); it is released when the command ends, however it
ends: normally, by a signal forwarded to it, or because labres itself failed.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import timedelta

from reservations.parsing import format_duration, parse_device_set

from . import times
from .commands import connect, duration_of, holder_now, shares_body, target_body, target_of, units_asked, whoami
from .errors import ApiError, CliError
from .output import warn

TYPE_CHECKING = False  # typing is for mypy only: the CLI starts fast without importing it
if TYPE_CHECKING:
    from argparse import Namespace
    from datetime import datetime
    from types import FrameType
    from typing import Any

    from .client import Client

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
# A terminal sends these to its whole foreground process group, the command included.
FROM_TERMINAL = (signal.SIGINT, signal.SIGQUIT)
STOP_GRACE_SECONDS = 10


def run(args: Namespace, command: list[str]) -> int:
    server, indices = target_of(args.target)
    limit = duration_of(args.duration)[1] if args.duration else None
    shares = shares_body(args)
    lease, renew_before = lease_settings(limit)
    heartbeat = _seconds("LABRES_RUN_HEARTBEAT", 30)
    client = connect(args)
    availability = client.get("availability/", server=server)
    now = times.from_api(availability["start"])
    gpus = server_gpus(availability, server)
    own = _held_by_me(client, availability, server, indices, shares)
    if own:
        # Units you hold already: the command runs inside your booking, which stays yours afterwards.
        for booking in own:
            warn(f"running inside your booking #{booking['id']} {booking['what']} (until {times.show(times.from_api(booking['end']), now)})")
        keepers = [Lease(client, booking, lease=lease, renew_before=renew_before, interval=heartbeat, limit=limit, now=now) for booking in own]
        return _run_holding(client, own, keepers, command, gpus if indices is None else indices, claimed=False)
    purpose = args.reason or f"labres run {os.path.basename(command[0])}"
    body = {**target_body(server, indices), **shares, "duration": format_duration(lease), "purpose": purpose, "source": "cli"}
    booking = _claim(client, body, wait=args.wait)
    if booking is None:
        return 1
    warn(f"holding #{booking['id']} {booking['what']} while the command runs")
    keeper = Lease(client, booking, lease=lease, renew_before=renew_before, interval=heartbeat, limit=limit)
    return _run_holding(client, [booking], [keeper], command, gpus, claimed=True)


def server_gpus(availability: dict[str, Any], server: str) -> list[int]:
    """The indices of the server's GPUs, as the portal (and nvidia-smi) numbers them; a CliError if there is no such server."""
    units = units_asked(availability["units"], server, None)
    return sorted(unit["device"] for unit in units if unit["kind"] == "gpu")


def _held_by_me(
    client: Client, availability: dict[str, Any], server: str, indices: list[int] | None, shares: dict[str, int]
) -> list[dict[str, Any]]:
    """Your running bookings that hold every unit asked for right now, or [] (then the units are claimed as usual).

    A share-only run (--cpus/--mem without GPUs) holds no unit: it is always a booking of its own.
    With --cpus/--mem, your bookings must also hold at least those shares.
    """
    if shares and indices is None:
        return []
    now = times.from_api(availability["start"])
    found = [holder_now(unit, now) for unit in units_asked(availability["units"], server, indices)]
    holders = [holder for holder in found if holder]  # the same list when every unit has a holder; typed without None
    if not holders or len(holders) < len(found) or any(holder.get("pending") for holder in holders):
        return []
    if {holder["user"] for holder in holders} != {whoami(client)}:
        return []
    bookings = [client.get(f"bookings/{booking_id}/") for booking_id in sorted({holder["booking"] for holder in holders})]
    for name in ("cpu_cores", "memory_gib"):
        if shares.get(name, 0) > sum(booking.get(name) or 0 for booking in bookings):
            return []
    return bookings


def lease_settings(limit: timedelta | None) -> tuple[timedelta, timedelta]:
    """(lease, renew_before): LABRES_RUN_LEASE (30m, or the limit if shorter), renewed LABRES_RUN_RENEW_BEFORE ahead."""
    lease = duration_of(os.environ.get("LABRES_RUN_LEASE") or "30m")[1]
    if limit is not None:
        lease = min(lease, limit)
    renew = os.environ.get("LABRES_RUN_RENEW_BEFORE")
    renew_before = duration_of(renew)[1] if renew else min(timedelta(minutes=5), lease / 2)
    return lease, renew_before


def _seconds(name: str, default: float) -> float:
    try:
        return max(0.05, float(os.environ.get(name) or default))
    except ValueError:
        raise CliError(f"{name} must be a number of seconds, e.g. 30") from None


def _claim(client: Client, body: dict[str, Any], *, wait: bool) -> Any:
    """The booking, or None when the units are taken and we are not to wait (the holders are printed)."""
    poll = _seconds("LABRES_WAIT_INTERVAL", 30)
    shown = None
    while True:
        try:
            return client.post("claims/", body)
        except ApiError as error:
            if error.status != 409:
                raise
            lines, conflicts = error.lines(), error.conflicts
        if not wait:
            for line in lines:
                warn(f"taken: {line}")
            yours = sorted({conflict["booking"] for conflict in conflicts if conflict.get("user") == whoami(client)})
            if yours:
                numbers = ", ".join(f"#{number}" for number in yours)
                warn(f"{numbers} {'is' if len(yours) == 1 else 'are'} yours: name only the units you hold to run inside your booking, or release it first")
            return None
        if lines != shown:
            warn(f"waiting: {' '.join(lines)}")
            shown = lines
        time.sleep(poll)


def _run_holding(
    client: Client, bookings: list[dict[str, Any]], keepers: list[Lease], command: list[str], gpus: list[int], *, claimed: bool
) -> int:
    # gpus: the server's GPUs, or (inside your own booking) the ones asked for: what the command may see.
    """Run the command while the keepers renew the bookings; then release them (claimed) or end what was added (your own)."""
    received: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if child is None or child.poll() is not None:
            return
        if signum in FROM_TERMINAL and _terminal_reaches_us():
            return  # the terminal sent it to the command as well; twice would cut its cleanup short
        child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    try:
        for keeper in keepers:
            keeper.start()
        if received:
            return 128 + received[0]  # told to stop before the command started
        try:
            child = subprocess.Popen(command, env=child_env(bookings, gpus))
        except FileNotFoundError:
            raise CliError(f"cannot run '{command[0]}': command not found", exit_code=127) from None
        except PermissionError:
            raise CliError(f"cannot run '{command[0]}': permission denied", exit_code=126) from None
        code = child.wait()
        return code if code >= 0 else 128 - code
    finally:
        if child is not None and child.poll() is None:
            _stop(child)  # labres itself failed: the command must not outlive its booking's keeper
        for keeper in keepers:
            keeper.stop()
        for booking, keeper in zip(bookings, keepers):
            if claimed or keeper.past_booked_end():
                _release(client, booking)  # your own booking only when labres kept it beyond its booked end
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _terminal_reaches_us() -> bool:
    """Whether we are in the foreground of a controlling terminal (so its Ctrl-C reached the command too)."""
    try:
        descriptor = os.open("/dev/tty", os.O_RDONLY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(descriptor) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(descriptor)


def child_env(bookings: list[dict[str, Any]], gpus: list[int]) -> dict[str, str]:
    """The command's environment: LABRES_BOOKING, and CUDA_VISIBLE_DEVICES set to the booked GPUs (of `gpus`) whatever the caller set.

    A whole-server booking sees all `gpus`; a booking of CPU cores or memory alone sees
    none (CUDA_VISIBLE_DEVICES empty). The portal numbers GPUs as nvidia-smi does (PCI bus order),
    so CUDA is told to use that order too: its default (fastest first) may differ.
    """
    booked: set[int] = set()
    for booking in bookings:
        if booking.get("whole_server"):
            booked.update(gpus)
        elif booking.get("devices"):
            booked.update(index for index in parse_device_set(booking["devices"]) if index in gpus)
    return dict(
        os.environ,
        LABRES_BOOKING=",".join(str(booking["id"]) for booking in bookings),
        CUDA_VISIBLE_DEVICES=",".join(str(index) for index in sorted(booked)),
        CUDA_DEVICE_ORDER="PCI_BUS_ID",
    )


def _stop(child: subprocess.Popen[bytes]) -> None:
    child.terminate()
    try:
        child.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _release(client: Client, booking: dict[str, Any]) -> None:
    """Release the booking; if that fails, say so and how to do it by hand (it still ends on its own)."""
    booking_id = booking["id"]
    try:
        client.post(f"bookings/{booking_id}/release/")
        return
    except CliError as error:
        failure = error
    try:
        current = client.get(f"bookings/{booking_id}/")
        if current["state"] in ("ended", "released", "cancelled"):
            return
        if current["state"] == "upcoming":
            client.post(f"bookings/{booking_id}/cancel/")
            return
    except CliError:
        pass
    warn(f"could not release #{booking_id}: {' '.join(failure.lines())}")
    warn(f"run `labres release {booking_id}`; otherwise it ends on its own")


class Lease(threading.Thread):
    """Renews a running booking by the lease whenever less than renew_before of it is left.

    Time left is counted on this host's monotonic clock from `now` (the portal's; the claim's
    start when not given), so a host clock that is off does not matter. The -d limit counts
    from `now` too.
    """

    start_at: datetime
    end: datetime
    booked_end: datetime
    def __init__(
        self,
        client: Client,
        booking: dict[str, Any],
        *,
        lease: timedelta,
        renew_before: timedelta,
        interval: float,
        limit: timedelta | None = None,
        now: datetime | None = None,
    ) -> None:
        super().__init__(name="labres-lease", daemon=True)
        self.client = client
        self.booking_id = booking["id"]
        self.start_at = now or times.from_api(booking["start"])
        self.end = self.booked_end = times.from_api(booking["end"])
        self.deadline = self.start_at + limit if limit is not None else None
        self.lease, self.renew_before, self.interval = lease, renew_before, interval
        self._claimed_at = time.monotonic()
        self._stopping = threading.Event()
        self._warned: set[str] = set()

    def past_booked_end(self) -> bool:
        """Whether labres moved the booking's end and the end it had before has come (so what is left is labres's to end)."""
        return self.end > self.booked_end and self.seconds_left() <= (self.end - self.booked_end).total_seconds()

    def seconds_left(self) -> float:
        return (self.end - self.start_at).total_seconds() - (time.monotonic() - self._claimed_at)

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            if self.seconds_left() <= self.renew_before.total_seconds():
                try:
                    self._renew()
                except Exception as error:  # the keeper must not die silently while the command runs
                    self._warn(f"could not extend #{self.booking_id}: {error}")

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(self.client.timeout + 1)

    def _renew(self) -> None:
        new_end = self.end + self.lease
        if self.deadline is not None:
            new_end = min(new_end, self.deadline)
        if new_end <= self.end:
            return  # at the -d limit: the booking ends there
        try:
            booking = self.client.post(f"bookings/{self.booking_id}/extend/", {"end": times.to_api(new_end)})
        except ApiError as error:
            self._warn(f"could not extend #{self.booking_id}: {' '.join(error.lines())}")
            if error.status == 400:
                self._resync()  # perhaps an earlier extension did go through, or the booking was ended
            return
        except CliError as error:  # unreachable for now: try again at the next beat
            self._warn(f"could not extend #{self.booking_id}: {error.message}")
            return
        self.end = times.from_api(booking["end"])

    def _resync(self) -> None:
        booking = self.client.get(f"bookings/{self.booking_id}/")
        self.end = times.from_api(booking["end"])
        if booking["state"] != "running":
            self._stopping.set()

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            warn(message)
