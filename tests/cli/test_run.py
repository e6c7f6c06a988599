import fcntl
import os
import select
import signal
import subprocess
import sys
import termios
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import F

from reservations import services
from reservations.models import Booking

from tests.factories import ServerFactory

from .conftest import CLI, only_cli_booking, wait_for

# A command that says when it has started, then runs until it is stopped.
LONG = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(120)"]
FAST_LEASE = {"LABRES_RUN_LEASE": "2m", "LABRES_RUN_RENEW_BEFORE": "2m", "LABRES_RUN_HEARTBEAT": "0.1"}


def test_run_releases_the_booking_after_the_command_succeeds(cli):
    result = cli("run", "thalys:0", "--", sys.executable, "-c", "print('trained')")

    assert result.returncode == 0, result.stderr
    assert "trained" in result.stdout
    assert only_cli_booking().status == Booking.Status.RELEASED


def test_run_passes_a_failing_commands_exit_code_through_and_releases(cli):
    result = cli("run", "thalys:0", "--", sys.executable, "-c", "raise SystemExit(3)")

    assert result.returncode == 3
    assert only_cli_booking().status == Booking.Status.RELEASED


def test_run_holds_the_units_while_the_command_runs(cli):
    script = "import subprocess, sys; sys.exit(subprocess.run([sys.executable, '-m', 'labres.cli', 'status', 'thalys:0']).returncode)"

    result = cli("run", "thalys:0", "-r", "check", "--", sys.executable, "-c", script)

    assert result.returncode == 0, result.stderr
    assert "alice (you)" in result.stdout


def test_run_gives_the_command_its_booking_and_gpus(cli):
    script = "import os; print(os.environ['LABRES_BOOKING'], os.environ['CUDA_VISIBLE_DEVICES'])"

    result = cli("run", "thalys:2-3", "--", sys.executable, "-c", script)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(only_cli_booking().pk), "2,3"]


def test_run_releases_the_booking_after_sigint(spawn):
    process = spawn("run", "thalys:0", "--", *LONG)
    assert process.stdout.readline().strip() == "started"

    process.send_signal(signal.SIGINT)

    assert process.wait(timeout=30) == 128 + signal.SIGINT
    assert only_cli_booking().status == Booking.Status.RELEASED


def test_run_releases_the_booking_after_sigterm(spawn):
    process = spawn("run", "thalys:0", "--", *LONG)
    assert process.stdout.readline().strip() == "started"

    process.terminate()

    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    assert only_cli_booking().status == Booking.Status.RELEASED


def test_run_when_taken_exits_1_naming_the_holder_without_running_the_command(cli, bob, holding, tmp_path):
    holding(bob, server="thalys", devices="0", purpose="training resnet")
    marker = tmp_path / "ran"

    result = cli("run", "thalys:0-1", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')")

    assert result.returncode == 1
    assert "GPU 0 on thalys is booked by bob" in result.stderr
    assert "training resnet" in result.stderr
    assert not marker.exists()
    assert only_cli_booking() is None


def test_run_with_wait_runs_the_command_once_the_units_are_free(spawn, bob, holding):
    theirs = holding(bob, server="thalys", devices="0")
    process = spawn("run", "thalys:0", "--wait", "--", sys.executable, "-c", "print('ran')", env={"LABRES_WAIT_INTERVAL": "0.2"})
    assert "waiting" in process.stderr.readline()

    services.release_booking(theirs, by=bob)

    assert process.wait(timeout=30) == 0
    assert process.stdout.read().strip() == "ran"
    assert only_cli_booking().status == Booking.Status.RELEASED


def test_run_heartbeat_extends_the_booking_while_the_command_runs(spawn):
    process = spawn("run", "thalys:0", "--", *LONG, env=FAST_LEASE)
    assert process.stdout.readline().strip() == "started"

    booking = wait_for(lambda: Booking.objects.filter(source="cli", end__gte=_start_plus(minutes=4)).first())

    assert booking.end - booking.start == timedelta(minutes=4)
    process.terminate()
    assert process.wait(timeout=30) == 128 + signal.SIGTERM


def test_run_heartbeat_never_extends_beyond_the_maximum(spawn):
    process = spawn("run", "thalys:0", "-d", "3m", "--", *LONG, env=FAST_LEASE)
    assert process.stdout.readline().strip() == "started"

    booking = wait_for(lambda: Booking.objects.filter(source="cli", end__gte=_start_plus(minutes=3)).first())
    time.sleep(1)  # ten more heartbeats

    booking.refresh_from_db()
    assert booking.end - booking.start == timedelta(minutes=3)
    process.terminate()
    process.wait(timeout=30)


def _start_plus(minutes):
    return F("start") + timedelta(minutes=minutes)


def test_run_ctrl_c_at_a_terminal_reaches_the_command_once(cli_env):
    # The terminal sends Ctrl-C to its whole foreground group, command included; labres must not send it again.
    counts_sigints = (
        "import signal, time\n"
        "count = 0\n"
        "def on_int(signum, frame):\n"
        "    global count\n"
        "    count += 1\n"
        "signal.signal(signal.SIGINT, on_int)\n"
        "print('started', flush=True)\n"
        "while not count:\n"
        "    time.sleep(0.05)\n"
        "time.sleep(0.5)\n"
        "print('sigints', count, flush=True)\n"
    )
    master, slave = os.openpty()
    process = subprocess.Popen(
        [*CLI, "run", "thalys:0", "--", sys.executable, "-c", counts_sigints],
        env=cli_env, stdin=slave, stdout=slave, stderr=slave, cwd=settings.BASE_DIR,
        start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )
    os.close(slave)
    try:
        _read_until(master, "started")
        os.write(master, b"\x03")  # Ctrl-C
        output = _read_until(master, "sigints")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    assert "sigints 1" in output
    assert only_cli_booking().status == Booking.Status.RELEASED


def _read_until(descriptor, text, timeout=15):
    output, deadline = "", time.monotonic() + timeout
    while text not in output:
        ready, _, _ = select.select([descriptor], [], [], max(0, deadline - time.monotonic()))
        if not ready:
            pytest.fail(f"no {text!r} from the terminal; got {output!r}")
        output += os.read(descriptor, 4096).decode(errors="replace")
    while "\n" not in output.split(text, 1)[1]:  # the rest of that line
        output += os.read(descriptor, 4096).decode(errors="replace")
    return output


SHOWS_GPUS = "import os; print(os.environ['LABRES_BOOKING'], repr(os.environ['CUDA_VISIBLE_DEVICES']), os.environ['CUDA_DEVICE_ORDER'])"


def test_run_sets_the_booked_gpus_over_what_the_caller_set(cli):
    caller = {"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "FASTEST_FIRST"}

    result = cli("run", "thalys:3", "--", sys.executable, "-c", SHOWS_GPUS, env=caller)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(only_cli_booking().pk), "'3'", "PCI_BUS_ID"]


def test_run_of_a_whole_server_sees_all_its_gpus(cli):
    result = cli("run", "thalys", "--", sys.executable, "-c", SHOWS_GPUS, env={"CUDA_VISIBLE_DEVICES": "0"})

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1] == "'0,1,2,3,4,5,6,7'"


def test_run_of_cpu_cores_alone_sees_no_gpu(cli):
    ServerFactory(name="big", gpus=2, cpu_cores=64, memory_gib=256)

    result = cli("run", "big", "--cpus", "8", "--", sys.executable, "-c", SHOWS_GPUS, env={"CUDA_VISIBLE_DEVICES": "0,1"})

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1] == "''"
    assert only_cli_booking().cpu_cores == 8


def test_run_on_gpus_you_hold_runs_inside_your_booking_and_leaves_it(cli, alice, holding):
    mine = holding(alice, server="thalys", devices="0-1", purpose="my week")
    assert cli("status", "thalys:1").returncode == 0  # status: yours

    result = cli("run", "thalys:1", "--", sys.executable, "-c", SHOWS_GPUS)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(mine.pk), "'1'", "PCI_BUS_ID"]
    assert f"running inside your booking #{mine.pk}" in result.stderr
    assert Booking.objects.count() == 1
    mine.refresh_from_db()
    assert (mine.status, mine.end) == (Booking.Status.CONFIRMED, mine.end)


def test_run_on_a_server_you_hold_whole_runs_inside_that_booking(cli, alice, holding):
    mine = holding(alice, server="thalys")

    result = cli("run", "--", sys.executable, "-c", SHOWS_GPUS)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == [str(mine.pk), "'0,1,2,3,4,5,6,7'"]
    assert Booking.objects.count() == 1


def test_run_inside_your_booking_extends_it_while_the_command_outlasts_it(spawn, alice, holding):
    mine = holding(alice, hours=1 / 60, server="thalys", devices="0")  # one minute left
    booked_end = mine.end
    process = spawn("run", "thalys:0", "--", *LONG, env=FAST_LEASE)
    assert process.stdout.readline().strip() == "started"

    wait_for(lambda: Booking.objects.filter(pk=mine.pk, end=booked_end + timedelta(minutes=2)).exists())

    process.terminate()
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    mine.refresh_from_db()
    assert mine.status == Booking.Status.CONFIRMED  # ended before its booked end: still yours
    assert Booking.objects.count() == 1


def test_run_on_gpus_partly_yours_names_your_booking(cli, alice, holding):
    mine = holding(alice, server="thalys", devices="0")

    result = cli("run", "thalys:0-1", "--", sys.executable, "-c", "pass")

    assert result.returncode == 1
    assert f"#{mine.pk} is yours: name only the units you hold" in result.stderr


def test_run_inside_your_booking_releases_what_it_kept_beyond_the_booked_end(spawn, alice, holding):
    mine = holding(alice, hours=1 / 3600, server="thalys", devices="0")  # one second left
    booked_end = mine.end
    process = spawn("run", "thalys:0", "--", *LONG, env=FAST_LEASE)
    assert process.stdout.readline().strip() == "started"
    wait_for(lambda: Booking.objects.filter(pk=mine.pk, end__gt=booked_end).exists())
    time.sleep(1.5)  # the booked end passes while the command runs

    process.terminate()

    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    mine.refresh_from_db()
    assert mine.status == Booking.Status.RELEASED
