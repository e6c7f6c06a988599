import json
from datetime import timedelta

from reservations import services
from reservations.models import Booking


def test_release_by_id_releases_a_running_booking(cli, alice, holding):
    booking = holding(alice, server="thalys", devices="0")

    result = cli("release", str(booking.pk))

    assert result.returncode == 0, result.stderr
    booking.refresh_from_db()
    assert booking.status == Booking.Status.RELEASED


def test_release_by_id_cancels_a_booking_that_has_not_started(cli, alice, book, later):
    booking = book(alice, later, server="thalys", devices="0")

    result = cli("release", str(booking.pk))

    assert result.returncode == 0, result.stderr
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CANCELLED


def test_release_by_target_releases_the_callers_running_bookings_on_those_gpus(cli, alice, holding):
    on_gpu_0 = holding(alice, server="thalys", devices="0")
    on_gpu_3 = holding(alice, server="thalys", devices="3")

    result = cli("release", "thalys:0-1")

    assert result.returncode == 0, result.stderr
    on_gpu_0.refresh_from_db()
    on_gpu_3.refresh_from_db()
    assert on_gpu_0.status == Booking.Status.RELEASED
    assert on_gpu_3.status == Booking.Status.CONFIRMED


def test_release_by_target_leaves_others_bookings_alone(cli, bob, holding):
    theirs = holding(bob, server="thalys", devices="0")

    result = cli("release", "thalys:0")

    assert result.returncode == 0, result.stderr
    assert "Nothing to release" in result.stderr
    theirs.refresh_from_db()
    assert theirs.status == Booking.Status.CONFIRMED


def test_release_of_someone_elses_booking_exits_2_with_the_apis_message(cli, bob, holding):
    theirs = holding(bob, server="thalys", devices="0")

    result = cli("release", str(theirs.pk))

    assert result.returncode == 2
    assert "belongs to bob" in result.stderr


def test_extend_moves_the_end_later(cli, alice, holding):
    booking = holding(alice, server="thalys", devices="0")
    end = booking.end

    result = cli("extend", str(booking.pk), "-d", "1h30m")

    assert result.returncode == 0, result.stderr
    booking.refresh_from_db()
    assert booking.end == end + timedelta(hours=1, minutes=30)


def test_cancel_cancels_an_upcoming_booking(cli, alice, book, later):
    booking = book(alice, later, server="thalys", devices="0")

    result = cli("cancel", str(booking.pk))

    assert result.returncode == 0, result.stderr
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CANCELLED


def test_cancelling_a_cancelled_booking_exits_2_not_taken(cli, alice, book, later):
    """A booking in the wrong state is an error (2), not 'taken' (1), though the API answers it with 409."""
    booking = book(alice, later, server="thalys", devices="0")
    services.cancel_booking(booking, by=alice)

    result = cli("cancel", str(booking.pk))

    assert result.returncode == 2, result.stderr
    assert "cancelled" in result.stderr and "Traceback" not in result.stderr


def test_mine_lists_running_and_upcoming_bookings_only(cli, alice, bob, holding, book, later):
    running = holding(alice, server="thalys", devices="0")
    upcoming = book(alice, later, server="thalys", devices="1")
    released = services.release_booking(holding(alice, server="thalys", devices="2"), by=alice)
    holding(bob, server="thalys", devices="3")

    result = cli("mine")

    assert result.returncode == 0, result.stderr
    assert f"#{running.pk} " in result.stdout and f"#{upcoming.pk} " in result.stdout
    assert f"#{released.pk} " not in result.stdout
    assert "thalys:3" not in result.stdout


def test_mine_json_is_a_list_of_bookings(cli, alice, holding):
    booking = holding(alice, server="thalys", devices="0")

    result = cli("mine", "--json")

    assert result.returncode == 0, result.stderr
    assert [item["id"] for item in json.loads(result.stdout)] == [booking.pk]


def test_mine_shows_a_booking_awaiting_approval(cli, alice, thalys, book, later):
    thalys.requires_approval = True
    thalys.save()
    pending = book(alice, later, server="thalys", devices="1")
    assert pending.status == Booking.Status.PENDING

    mine = cli("mine")

    assert mine.returncode == 0, mine.stderr
    assert f"pending   #{pending.pk} " in mine.stdout
