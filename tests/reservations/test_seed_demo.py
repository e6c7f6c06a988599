from datetime import datetime, timedelta
from io import StringIO
from itertools import groupby

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from monitoring.demo_host import IDLE_ONE_IN
from monitoring.models import GpuHour, GpuMinute
from reservations import services
from reservations.management.commands.seed_demo import WEEK
from reservations.models import Allocation, Booking, Device, Profile, Room, Server, Unit

from ..factories import UserFactory

DEMO_LOGINS = {"admin": "demo-admin", "alice": "demo-alice", "bob": "demo-bob", "carol": "demo-carol"}


@pytest.fixture(autouse=True)
def demo_settings(settings):
    settings.DEBUG = True  # the command refuses to run without it
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast hashing


def seed(*args, history=False):
    """Run seed_demo; the telemetry history (a few seconds) only where a test is about it."""
    out = StringIO()
    call_command("seed_demo", *args, *([] if history else ["--no-history"]), stdout=out)
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
    assert states.count("running") == 3  # two of GPUs, one of ice's cores and memory
    assert len(states) == len(WEEK)


@pytest.mark.django_db
def test_seed_demo_gives_the_members_their_unix_user_names():
    seed()

    names = dict(Profile.objects.values_list("user__username", "unix_username"))
    assert names == {"admin": "", "alice": "alice", "bob": "bob", "carol": "carol"}


@pytest.mark.django_db
def test_seed_demo_leaves_a_unix_user_name_another_member_has():
    dave = UserFactory(username="dave")
    Profile.objects.filter(user=dave).update(unix_username="alice")

    output = seed()

    assert Profile.objects.get(user__username="alice").unix_username == ""
    assert "Another member has the unix user name alice" in output


@pytest.mark.django_db
def test_seed_demo_monitors_the_gpu_servers_only():
    seed()

    assert dict(Server.objects.values_list("name", "monitored")) == {
        "thalys": True, "eurostar": True, "shinkansen": True, "ice": False,
    }


@pytest.mark.django_db
def test_seed_demo_writes_30_days_of_hours_and_2_days_of_minutes_for_every_gpu():
    now = timezone.now()

    seed(history=True)

    gpus = Device.objects.filter(server__monitored=True)
    assert gpus.count() == 14
    for gpu in gpus:
        hours = GpuHour.objects.filter(device=gpu)
        minutes = GpuMinute.objects.filter(device=gpu)
        assert hours.count() >= 30 * 24
        assert hours.earliest("bucket").bucket <= now - timedelta(days=30)
        assert minutes.count() >= 2 * 24 * 60
        assert minutes.earliest("bucket").bucket <= now - timedelta(days=2)
        assert minutes.latest("bucket").bucket >= now - timedelta(minutes=2)


@pytest.mark.django_db
def test_seed_demo_hours_of_the_last_two_days_add_up_their_minutes():
    seed(history=True)

    hour = GpuHour.objects.filter(bucket__gte=timezone.now() - timedelta(days=1), device__server__name="thalys").first()
    minutes = GpuMinute.objects.filter(device=hour.device, bucket__gte=hour.bucket, bucket__lt=hour.bucket + timedelta(hours=1))
    assert minutes.count() == 60
    assert hour.samples == sum(minute.samples for minute in minutes)
    assert hour.gpu_util_sum == sum(minute.gpu_util_sum for minute in minutes)
    assert hour.gpu_util_max == max(minute.gpu_util_max for minute in minutes)


@pytest.mark.django_db
def test_seed_demo_history_is_busy_where_booked_and_idle_where_free():
    seed(history=True)

    # Bookings that ran, and were not among the demo's deliberately idle ones (one in five).
    worked = [
        booking for booking in Booking.objects.filter(room__isnull=True, server__monitored=True, end__lte=timezone.now())
        if booking.pk % IDLE_ONE_IN
    ]
    assert worked
    for booking in worked:
        hours = GpuHour.objects.filter(
            device__unit__allocations__booking=booking, bucket__gte=booking.start, bucket__lt=booking.end - timedelta(hours=1),
        )
        assert hours.exists()
        assert all(hour.active_samples == hour.samples > 0 for hour in hours), booking
    # Three weeks ago nobody had booked anything, nor used a GPU unbooked.
    month = GpuHour.objects.filter(device__server__name="thalys", bucket__lt=timezone.now() - timedelta(days=21))
    assert month.exists()
    assert all(hour.active_samples == 0 for hour in month)


@pytest.mark.django_db
def test_seed_demo_history_shows_this_weeks_unbooked_use_in_working_hours(settings, monkeypatch):
    settings.TIME_ZONE = "UTC"
    now = timezone.make_aware(datetime(2030, 3, 20, 12, 30))
    monkeypatch.setattr(timezone, "now", lambda: now)

    seed(history=True)

    # Four days ago nothing held thalys's highest GPU: the unbooked job ran there in the day, not at night.
    gpu = Device.objects.get(server__name="thalys", index=7)
    midnight = now.replace(hour=0, minute=0) - timedelta(days=4)
    assert not Allocation.objects.filter(unit__device=gpu, start__lt=midnight + timedelta(days=1), end__gt=midnight).exists()
    day = GpuHour.objects.get(device=gpu, bucket=midnight + timedelta(hours=10))
    night = GpuHour.objects.get(device=gpu, bucket=midnight + timedelta(hours=2))
    assert day.active_samples == day.samples > 0
    assert night.active_samples == 0


@pytest.mark.django_db
def test_seed_demo_history_twice_writes_nothing_more(monkeypatch):
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)  # a minute that ends between the runs would be new
    seed(history=True)
    before = (GpuHour.objects.count(), GpuMinute.objects.count())

    output = seed(history=True)

    assert (GpuHour.objects.count(), GpuMinute.objects.count()) == before
    assert "Telemetry history is already there" in output


@pytest.mark.django_db
def test_seed_demo_history_keeps_real_telemetry():
    seed()
    gpu = Device.objects.get(server__name="thalys", index=0)
    bucket = (timezone.now() - timedelta(hours=5)).replace(second=0, microsecond=0)
    real = GpuMinute.objects.create(device=gpu, bucket=bucket, samples=3, gpu_util_sum=297, gpu_util_max=99)

    seed(history=True)

    real.refresh_from_db()
    assert (real.samples, real.gpu_util_sum, real.gpu_util_max) == (3, 297, 99)
    assert GpuMinute.objects.filter(device=gpu, bucket=bucket).count() == 1


@pytest.mark.django_db
def test_seed_demo_queues_no_messages_about_its_made_up_week():
    from notifications.models import Notification

    seed()
    assert Booking.objects.exists()
    assert not Notification.objects.exists()


@pytest.mark.django_db
def test_seed_demo_gives_ice_pooled_capacities_and_shares_on_the_timeline(client):
    output = seed()

    ice = Server.objects.get(name="ice")
    assert (ice.cpu_cores, ice.memory_gib) == (192, 1536)
    shares = Booking.objects.filter(server=ice, cpu_cores__gt=0)
    assert sorted((b.cpu_cores, b.memory_gib) for b in shares) == [(64, 256), (96, 768)]
    assert "Skipped" not in output
    client.force_login(get_user_model().objects.get(username="alice"))
    overlap_starts = shares.get(cpu_cores=96).start  # the day it starts holds the overlap, whatever the hour now
    day = timezone.localdate(overlap_starts).isoformat()
    page = client.get("/timeline/", {"view": "day", "date": day})
    band = next(g for g in page.context["timeline"].groups if g.name == "ice").band
    assert (160, 1024) in [(step.cpu_cores, step.memory_gib) for step in band.steps]  # the two overlap for two hours


@pytest.mark.django_db
def test_seed_demo_leaves_one_booking_awaiting_approval_on_the_h100_server():
    output = seed()

    assert Server.objects.get(name="shinkansen").requires_approval
    [pending] = Booking.objects.filter(status=Booking.Status.PENDING)
    assert (pending.server.name, pending.user.username) == ("shinkansen", "bob")
    assert "1 awaiting approval" in output and "Skipped" not in output


@pytest.mark.django_db
def test_the_demo_has_a_students_group_whose_limits_show_and_its_week_keeps_within_them():
    from reservations.errors import LimitExceeded
    from reservations.models import Limit, MemberGroup

    out = seed()
    seed()  # a second run brings the group back to its values, once

    students = MemberGroup.objects.get(name="Students")
    limits = {limit.kind: (limit.number, limit.duration) for limit in Limit.objects.filter(group=students, server=None, room=None)}
    assert limits == {"max_gpus": (4, ""), "max_length": (None, "12h"), "gpu_hours_week": (120, "")}
    assert sorted(Profile.objects.filter(group=students).values_list("user__username", flat=True)) == ["bob", "carol"]
    assert "Skipped" not in out  # the demo week keeps within the limits
    bob = get_user_model().objects.get(username="bob")
    start = timezone.now() + timedelta(days=8)
    with pytest.raises(LimitExceeded, match="at most 4 GPUs at once"):
        services.create_booking(bob, start=start, end=start + timedelta(hours=1), server="thalys")  # all 8 GPUs
