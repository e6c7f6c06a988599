"""`labres run`: hold units exactly as long as a command runs.

The booking is claimed for a short lease and renewed shortly before it ends while the
command runs (never past -d, when given); it is released when the command ends, however it
ends: normally, by a signal forwarded to it, or because labres itself failed.
"""
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

from reservations.parsing import format_duration

from . import times
from .commands import connect, duration_of, shares_body, target_body, target_of
from .errors import ApiError, CliError

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
# A terminal sends these to its whole foreground process group, the command included.
FROM_TERMINAL = (signal.SIGINT, signal.SIGQUIT)
STOP_GRACE_SECONDS = 10


def run(args, command):
    server, indices = target_of(args.target)
    limit = duration_of(args.duration)[1] if args.duration else None
    shares = shares_body(args)
    lease, renew_before = lease_settings(limit)
    heartbeat = _seconds("LABRES_RUN_HEARTBEAT", 30)
    client = connect(args)
    purpose = args.reason or f"labres run {os.path.basename(command[0])}"
    body = {**target_body(server, indices), **shares, "duration": format_duration(lease), "purpose": purpose, "source": "cli"}
    booking = _claim(client, body, wait=args.wait)
    if booking is None:
        return 1
    print(f"labres: holding #{booking['id']} {booking['what']} while the command runs", file=sys.stderr)
    keeper = Lease(client, booking, lease=lease, renew_before=renew_before, interval=heartbeat, limit=limit)
    return _run_holding(client, booking, keeper, command, indices)


def lease_settings(limit):
    """(lease, renew_before): LABRES_RUN_LEASE (30m, or the limit if shorter), renewed LABRES_RUN_RENEW_BEFORE ahead."""
    lease = duration_of(os.environ.get("LABRES_RUN_LEASE") or "30m")[1]
    if limit is not None:
        lease = min(lease, limit)
    renew = os.environ.get("LABRES_RUN_RENEW_BEFORE")
    renew_before = duration_of(renew)[1] if renew else min(timedelta(minutes=5), lease / 2)
    return lease, renew_before


def _seconds(name, default):
    try:
        return max(0.05, float(os.environ.get(name) or default))
    except ValueError:
        raise CliError(f"{name} must be a number of seconds, e.g. 30") from None


def _claim(client, body, *, wait):
    """The booking, or None when the units are taken and we are not to wait (the holders are printed)."""
    poll = _seconds("LABRES_WAIT_INTERVAL", 30)
    shown = None
    while True:
        try:
            return client.post("claims/", body)
        except ApiError as error:
            if error.status != 409:
                raise
            lines = error.lines()
        if not wait:
            for line in lines:
                print(f"labres: taken: {line}", file=sys.stderr)
            return None
        if lines != shown:
            print(f"labres: waiting: {' '.join(lines)}", file=sys.stderr)
            shown = lines
        time.sleep(poll)


def _run_holding(client, booking, keeper, command, indices):
    received = []
    child = None

    def forward(signum, frame):
        received.append(signum)
        if child is None or child.poll() is not None:
            return
        if signum in FROM_TERMINAL and _terminal_reaches_us():
            return  # the terminal sent it to the command as well; twice would cut its cleanup short
        child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    try:
        keeper.start()
        if received:
            return 128 + received[0]  # told to stop before the command started
        try:
            child = subprocess.Popen(command, env=_child_env(booking, indices))
        except FileNotFoundError:
            raise CliError(f"cannot run '{command[0]}': command not found", exit_code=127) from None
        except PermissionError:
            raise CliError(f"cannot run '{command[0]}': permission denied", exit_code=126) from None
        code = child.wait()
        return code if code >= 0 else 128 - code
    finally:
        if child is not None and child.poll() is None:
            _stop(child)  # labres itself failed: the command must not outlive its booking's keeper
        keeper.stop()
        _release(client, booking)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _terminal_reaches_us():
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


def _child_env(booking, indices):
    env = dict(os.environ, LABRES_BOOKING=str(booking["id"]))
    if indices and "CUDA_VISIBLE_DEVICES" not in env:
        # The portal numbers GPUs as nvidia-smi does (PCI bus order); CUDA's default order may differ.
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(index) for index in indices)
        env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    return env


def _stop(child):
    child.terminate()
    try:
        child.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _release(client, booking):
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
    print(f"labres: could not release #{booking_id}: {' '.join(failure.lines())}", file=sys.stderr)
    print(f"labres: run `labres release {booking_id}`; otherwise it ends on its own", file=sys.stderr)


class Lease(threading.Thread):
    """Renews a running booking by the lease whenever less than renew_before of it is left.

    Time left is counted on this host's monotonic clock from the claim, so a host clock that
    is off does not matter.
    """

    def __init__(self, client, booking, *, lease, renew_before, interval, limit=None):
        super().__init__(name="labres-lease", daemon=True)
        self.client = client
        self.booking_id = booking["id"]
        self.start_at = times.from_api(booking["start"])
        self.end = times.from_api(booking["end"])
        self.deadline = self.start_at + limit if limit is not None else None
        self.lease, self.renew_before, self.interval = lease, renew_before, interval
        self._claimed_at = time.monotonic()
        self._stopping = threading.Event()
        self._warned = set()

    def seconds_left(self):
        return (self.end - self.start_at).total_seconds() - (time.monotonic() - self._claimed_at)

    def run(self):
        while not self._stopping.wait(self.interval):
            if self.seconds_left() <= self.renew_before.total_seconds():
                try:
                    self._renew()
                except Exception as error:  # the keeper must not die silently while the command runs
                    self._warn(f"could not extend #{self.booking_id}: {error}")

    def stop(self):
        self._stopping.set()
        if self.is_alive():
            self.join(self.client.timeout + 1)

    def _renew(self):
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

    def _resync(self):
        booking = self.client.get(f"bookings/{self.booking_id}/")
        self.end = times.from_api(booking["end"])
        if booking["state"] != "running":
            self._stopping.set()

    def _warn(self, message):
        if message not in self._warned:
            self._warned.add(message)
            print(f"labres: {message}", file=sys.stderr)
