from datetime import datetime, timedelta
from io import StringIO
from itertools import groupby

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from reservations import services
from reservations.management.commands.seed_demo import WEEK
from reservations.models import Allocation, Booking, Device, Room, Server, Unit

from ..factories import UserFactory

DEMO_LOGINS = {"admin": "demo-admin", "alice": "demo-alice", "bob": "demo-bob", "carol": "demo-carol"}


@pytest.fixture(autouse=True)
def demo_settings(settings):
    settings.DEBUG = True  # the command refuses to run without it
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast hashing


def seed(*args):
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def counts():
    return {
        model.__name__: model.objects.count()
        for model in (Server, Device, Room, Unit, get_user_model(), Booking, Allocation)
    }


@pytest.mark.django_db
def test_seed_demo_creates_the_lab():
    seed()

    gpus = {server.name: server.devices.count() for server in Server.objects.all()}
    assert sorted(gpus.values()) == [0, 2, 4, 8]
    assert gpus["thalys"] == 8
    assert Room.objects.count() == 2
    assert all(device.uuid.startswith("GPU-") and len(device.uuid) == 40 for device in Device.objects.all())


@pytest.mark.django_db
def test_seed_demo_users_log_in_with_the_printed_passwords():
    output = seed()

    users = {user.username: user for user in get_user_model().objects.all()}
    assert set(users) == set(DEMO_LOGINS)
    for username, password in DEMO_LOGINS.items():
        assert users[username].check_password(password)
        assert f"{username} / {password}" in output
    assert users["admin"].is_staff and users["admin"].is_superuser
    assert not users["alice"].is_staff


@pytest.mark.django_db
def test_seed_demo_books_past_running_and_upcoming():
    output = seed()

    states = [booking.state() for booking in Booking.objects.all()]
    assert "running" in states
    assert "upcoming" in states
    assert "ended" in states
    assert "released" in states
    assert Booking.objects.filter(whole_server=True).exists()
    assert Booking.objects.filter(room__isnull=False).exists()
    assert "Skipped" not in output


@pytest.mark.django_db
def test_seed_demo_twice_changes_nothing():
    seed()
    before = counts()

    output = seed()

    assert counts() == before
    assert "leaving bookings as they are" in output


@pytest.mark.django_db
def test_seed_demo_reset_makes_the_week_again():
    seed()
    before = counts()
    old_ids = set(Booking.objects.values_list("pk", flat=True))

    seed("--reset")

    assert counts() == before
    assert not old_ids & set(Booking.objects.values_list("pk", flat=True))


@pytest.mark.django_db
def test_seed_demo_reset_keeps_other_members_bookings():
    seed()
    dave = UserFactory(username="dave")
    start = (timezone.now() + timedelta(days=20)).replace(minute=0, second=0, microsecond=0)
    kept = services.create_booking(dave, start=start, end=start + timedelta(hours=1), server="thalys", devices="0")

    seed("--reset")

    assert Booking.objects.filter(pk=kept.pk).exists()


@pytest.mark.django_db
def test_seed_demo_leaves_no_overlapping_allocations():
    seed()
    seed("--reset")

    rows = Allocation.objects.filter(active=True).order_by("unit_id", "start").values_list("unit_id", "start", "end")
    assert rows
    for _, allocations in groupby(rows, key=lambda row: row[0]):
        allocations = list(allocations)
        for (_, _, previous_end), (_, next_start, _) in zip(allocations, allocations[1:]):
            assert previous_end <= next_start


@pytest.mark.django_db
def test_seed_demo_refuses_without_debug(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DEBUG=1"):
        seed()
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("time_zone", ["UTC", "Europe/Paris"])
@pytest.mark.parametrize("clock", ["00:05", "12:30", "23:55"])
def test_seed_demo_fits_the_week_at_any_hour(settings, monkeypatch, time_zone, clock):
    settings.TIME_ZONE = time_zone
    hour, minute = map(int, clock.split(":"))
    # The night before the 2030 switch to summer time, the week spans the change.
    now = timezone.make_aware(datetime(2030, 3, 30, hour, minute))
    monkeypatch.setattr(timezone, "now", lambda: now)

    output = seed()

    assert "Skipped" not in output
    states = [booking.state(now) for booking in Booking.objects.all()]
    assert states.count("running") == 2
    assert len(states) == len(WEEK)
