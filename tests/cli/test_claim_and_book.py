import json
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from reservations.models import Booking

from .conftest import only_cli_booking


def test_claim_books_from_now_with_source_cli(cli):
    result = cli("claim", "thalys:0-1", "-d", "2h", "-r", "training resnet")

    assert result.returncode == 0, result.stderr
    booking = only_cli_booking()
    assert booking.what == "thalys:0-1"
    assert booking.purpose == "training resnet"
    assert booking.end - booking.start == timedelta(hours=2)
    assert abs(booking.start - timezone.now()) < timedelta(minutes=1)
    assert f"#{booking.pk}" in result.stdout and "thalys:0-1" in result.stdout


def test_claim_defaults_to_one_hour_of_this_hosts_whole_server(cli):
    result = cli("claim")

    assert result.returncode == 0, result.stderr
    booking = only_cli_booking()
    assert booking.whole_server and booking.server.name == "thalys"
    assert booking.end - booking.start == timedelta(hours=1)


def test_claim_of_taken_gpus_exits_1_naming_the_holder(cli, bob, holding):
    holding(bob, server="thalys", devices="1")

    result = cli("claim", "thalys:0-1")

    assert result.returncode == 1
    assert "GPU 1 on thalys is booked by bob" in result.stderr
    assert not Booking.objects.filter(source=Booking.Source.CLI).exists()


def test_claim_json_is_the_booking(cli):
    result = cli("claim", "thalys:3", "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == only_cli_booking().pk


def test_book_with_start_and_end(cli, lab_in_utc):
    day = (timezone.now() + timedelta(days=2)).date()

    result = cli("book", "thalys:4", "--start", f"{day}T10:00", "--end", "12:00", "-r", "review")

    assert result.returncode == 0, result.stderr
    booking = only_cli_booking()
    assert booking.start == datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
    assert booking.end == datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    assert booking.purpose == "review"


def test_book_with_start_and_duration(cli, lab_in_utc):
    day = (timezone.now() + timedelta(days=2)).date()

    result = cli("book", "thalys", "--start", f"{day}T22:00", "-d", "4h")

    assert result.returncode == 0, result.stderr
    booking = only_cli_booking()
    assert booking.whole_server
    assert booking.end - booking.start == timedelta(hours=4)


def test_book_needs_an_end_or_a_duration(cli):
    result = cli("book", "thalys", "--start", "now")

    assert result.returncode == 2
    assert "--end" in result.stderr
