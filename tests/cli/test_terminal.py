"""What other members wrote reaches a terminal only as plain text: the CLI runs in a pty here, as at a shell."""
import os
import subprocess
import sys

from django.conf import settings

from reservations.models import Booking

from .conftest import CLI

# Set the terminal's title, turn it red, go back to the line's start, and reverse what follows.
HOSTILE = "\x1b]0;pwned\x07\x1b[31mred\x1b[0m\rover\u202eesrever\x9b2J\nnext"


def in_a_terminal(env, *args):
    """Run `labres` with a pty as its terminal (stdout and stderr); returns (exit code, what the terminal got)."""
    master, slave = os.openpty()
    process = subprocess.Popen([*CLI, *args], env=env, stdin=slave, stdout=slave, stderr=slave, cwd=settings.BASE_DIR)
    os.close(slave)
    received = b""
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other end closed
                break
            if not chunk:
                break
            received += chunk
    finally:
        os.close(master)
    return process.wait(timeout=30), received.decode()


def assert_plain(shown):
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert "\r" not in shown.replace("\r\n", "")  # the terminal's own line ends only
    assert "\u202e" not in shown


def hostile_booking(user, holding, **target):
    """A booking whose purpose holds control characters, written past the service's refusal (an old row)."""
    booking = holding(user, **target)
    Booking.objects.filter(pk=booking.pk).update(purpose=HOSTILE)
    return booking


def test_status_shows_a_purpose_with_escapes_as_plain_text(cli_env, bob, holding):
    hostile_booking(bob, holding, server="thalys", devices="0")

    code, shown = in_a_terminal(cli_env, "status", "thalys")

    assert code == 1
    assert "bob" in shown and "red" in shown
    assert_plain(shown)


def test_run_taken_message_shows_a_purpose_with_escapes_as_plain_text(cli_env, bob, holding):
    hostile_booking(bob, holding, server="thalys", devices="0")

    code, shown = in_a_terminal(cli_env, "run", "thalys:0", "--", sys.executable, "-c", "pass")

    assert code == 1
    assert "taken: GPU 0 on thalys is booked by bob" in shown
    assert_plain(shown)


def test_mine_shows_a_purpose_with_line_breaks_on_one_line(cli_env, alice, holding):
    booking = hostile_booking(alice, holding, server="thalys", devices="1")

    code, shown = in_a_terminal(cli_env, "mine")

    assert code == 0
    assert_plain(shown)
    line = next(line for line in shown.splitlines() if f"#{booking.pk}" in line)
    assert line.endswith("(]0;pwned[31mred[0m overesrever2J next)")  # the breaks became spaces: one line


def test_an_error_message_with_escapes_is_shown_as_plain_text(cli_env, bob, holding):
    hostile_booking(bob, holding, server="thalys", devices="2")

    code, shown = in_a_terminal(cli_env, "claim", "thalys:2")

    assert code == 1
    assert "booked by bob" in shown
    assert_plain(shown)
