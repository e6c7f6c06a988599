"""`labres claim/book --cpus N --mem 64G`: shares of a server's pooled CPU cores and memory, from the command line."""
import json
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from reservations.models import Booking
from tests.factories import ServerFactory

from .conftest import only_cli_booking


@pytest.fixture
def big(db):
    return ServerFactory(name="big", gpus=2, cpu_cores=128, memory_gib=1024)


def test_claim_of_shares_alone_books_them_without_gpus(cli, big):
    result = cli("claim", "big", "--cpus", "16", "--mem", "64G", "-d", "2h")

    assert result.returncode == 0, result.stderr
    booking = only_cli_booking()
    assert (booking.cpu_cores, booking.memory_gib, booking.whole_server, booking.allocations.count()) == (16, 64, False, 0)
    assert booking.end - booking.start == timedelta(hours=2)
    assert f"Booked #{booking.pk} big: 16 CPU cores, 64 GiB until" in result.stdout


def test_claim_of_gpus_with_memory_in_tebibytes(cli, big):
    result = cli("claim", "big:1", "--mem", "1T", "--json")

    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert (body["devices"], body["cpu_cores"], body["memory_gib"]) == ("1", 0, 1024)


def test_book_takes_the_shares_too(cli, big, lab_in_utc):
    day = (timezone.now() + timedelta(days=2)).date()

    result = cli("book", "big", "--start", f"{day}T10:00", "-d", "3h", "--cpus", "32", "--mem", "256GiB")

    assert result.returncode == 0, result.stderr
    booking = only_cli_booking()
    assert (booking.cpu_cores, booking.memory_gib) == (32, 256)
    assert booking.start.hour == 10 and booking.end - booking.start == timedelta(hours=3)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--mem", "512M"], "'512M' is 0.5 GiB; memory is booked in whole GiB, e.g. 1G"),
        (["--mem", "lots"], "'lots' is not an amount of memory; write GiB like 64, 64G, 64GiB or 1T"),
        (["--cpus", "many"], "'many' is not a number of CPU cores; write a whole number like 16"),
        (["--cpus", "-4"], "'-4' is not a number of CPU cores"),
    ],
)
def test_bad_amounts_exit_2_with_a_message_and_book_nothing(cli, big, flags, message):
    result = cli("claim", "big", *flags)

    assert result.returncode == 2
    assert f"labres: {message}" in result.stderr
    assert not Booking.objects.exists()


def test_more_than_is_free_exits_non_zero_saying_how_much_is_free(cli, bob, big, holding):
    holding(bob, server="big", cpu_cores=120)

    result = cli("claim", "big", "--cpus", "16")

    assert result.returncode == 2
    assert "120 are booked" in result.stderr and "8 are free then and you asked for 16" in result.stderr
    assert only_cli_booking() is None


def test_shares_on_a_server_without_pools_are_refused(cli):
    result = cli("claim", "thalys", "--cpus", "4")

    assert result.returncode == 2
    assert "Server thalys has no pooled CPU cores to book" in result.stderr


def test_status_says_how_much_of_the_pool_is_free(cli, bob, big, holding):
    holding(bob, server="big", cpu_cores=48, memory_gib=256)

    result = cli("status", "big")

    assert result.returncode == 0, result.stderr
    assert "Pool: 80 of 128 CPU cores and 768 of 1024 GiB free throughout the next 24 h" in result.stdout


def test_status_of_a_server_without_pools_prints_no_pool_line(cli):
    result = cli("status", "thalys")

    assert result.returncode == 0, result.stderr
    assert "Pool:" not in result.stdout


def test_mine_lists_the_shares(cli, alice, big, holding):
    holding(alice, server="big", devices="0", memory_gib=32)

    result = cli("mine")

    assert result.returncode == 0, result.stderr
    assert "big:0 + 32 GiB until" in result.stdout


def test_run_holds_the_shares_while_the_command_runs_and_releases_them(cli, big):
    script = "import os; print(os.environ['LABRES_BOOKING'])"

    result = cli("run", "big", "--cpus", "8", "--mem", "32G", "--", sys.executable, "-c", script)

    assert result.returncode == 0, result.stderr
    booking = only_cli_booking()
    assert result.stdout.split() == [str(booking.pk)]
    assert (booking.cpu_cores, booking.memory_gib, booking.status) == (8, 32, Booking.Status.RELEASED)
    assert "holding #" in result.stderr and "big: 8 CPU cores, 32 GiB" in result.stderr


def test_run_with_a_bad_amount_runs_nothing(cli, big, tmp_path):
    marker = tmp_path / "ran"

    result = cli("run", "big", "--mem", "0.5G", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')")

    assert result.returncode == 2 and "whole GiB" in result.stderr
    assert not marker.exists() and not Booking.objects.exists()
