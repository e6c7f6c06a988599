"""detect(): idle bookings, unbooked use and stale hosts become alerts, once per cause, resolved when gone."""
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from monitoring.alerts import detect
from monitoring.fake_nvml import FakeGPU
from monitoring.models import Alert
from reservations.models import Booking, BookingAuditEntry
from tests.factories import ServerFactory

from .telemetry import gpu, report, running_booking, utilization_series

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def thresholds(settings):
    settings.TELEMETRY_INTERVAL_SECONDS = 15
    settings.TELEMETRY_STALE_INTERVALS = 3
    settings.IDLE_BOOKING_PERCENT = 5
    settings.IDLE_BOOKING_AFTER = "30m"


@pytest.fixture
def eurostar(db):
    return ServerFactory(name="eurostar", gpus=4)


def devices(server, *indices):
    return [server.devices.get(index=i) for i in indices]


def idle_for(server, indices, minutes, *, util=2, now=None):
    now = now or timezone.now()
    for device in devices(server, *indices):
        utilization_series(device, now - timedelta(minutes=minutes), now, util)
    return now


def open_alerts(kind):
    return list(Alert.objects.filter(kind=kind, resolved_at__isnull=True))


def test_a_booking_idle_for_the_whole_window_raises_one_alert_for_its_owner(alice, eurostar):
    booking = running_booking(alice, eurostar, "0-1", started_ago=timedelta(minutes=40))
    now = idle_for(eurostar, (0, 1), 35)

    detect(now)
    detect(now + timedelta(seconds=30))  # a second pass, or a second beat: still one alert

    (alert,) = open_alerts(Alert.Kind.IDLE_BOOKING)
    assert (alert.booking_id, alert.user_id, alert.server_id) == (booking.pk, alice.pk, eurostar.pk)
    assert f"Booking #{booking.pk} (eurostar:0-1) has used at most 2% of its GPUs for the last 30m." == alert.message
    assert alert.action == ""
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CONFIRMED  # eurostar does not release


def test_one_busy_gpu_keeps_the_booking_from_being_idle(alice, eurostar):
    running_booking(alice, eurostar, "0-1", started_ago=timedelta(minutes=40))
    now = idle_for(eurostar, (0,), 35)
    idle_for(eurostar, (1,), 35, util=60, now=now)

    detect(now)

    assert open_alerts(Alert.Kind.IDLE_BOOKING) == []


def test_a_booking_that_started_within_the_window_is_not_judged_yet(alice, eurostar):
    running_booking(alice, eurostar, "0", started_ago=timedelta(minutes=20))
    now = idle_for(eurostar, (0,), 35)

    detect(now)

    assert open_alerts(Alert.Kind.IDLE_BOOKING) == []


def test_readings_that_do_not_cover_the_window_are_not_idle(alice, eurostar):
    # The host was down for the first part of the window: nobody knows what the GPU did then.
    running_booking(alice, eurostar, "0", started_ago=timedelta(minutes=60))
    now = idle_for(eurostar, (0,), 10)

    detect(now)

    assert open_alerts(Alert.Kind.IDLE_BOOKING) == []


def test_the_idle_alert_is_resolved_when_the_gpus_get_busy(alice, eurostar):
    running_booking(alice, eurostar, "0", started_ago=timedelta(minutes=40))
    now = idle_for(eurostar, (0,), 35)
    detect(now)
    utilization_series(devices(eurostar, 0)[0], now, now + timedelta(seconds=30), 70)

    detect(now + timedelta(seconds=30))

    alert = Alert.objects.get(kind=Alert.Kind.IDLE_BOOKING)
    assert alert.resolved_at == now + timedelta(seconds=30)


def test_a_server_that_releases_idle_bookings_releases_them(alice, eurostar):
    eurostar.release_idle_bookings = True
    eurostar.save()
    booking = running_booking(alice, eurostar, "2", started_ago=timedelta(minutes=45))
    now = idle_for(eurostar, (2,), 35)

    counts = detect(now)

    booking.refresh_from_db()
    assert counts["released"] == 1
    assert (booking.status, booking.end) == (Booking.Status.RELEASED, now)
    alert = Alert.objects.get(kind=Alert.Kind.IDLE_BOOKING)
    assert alert.resolved_at == now and alert.action.startswith("Released the booking at")
    assert detect(now + timedelta(minutes=1))["released"] == 0
    entry = BookingAuditEntry.objects.filter(booking=booking).latest("pk")
    assert (entry.action, entry.actor, entry.surface) == ("released", None, "system")  # the server's policy, not alice


def test_a_process_of_a_member_without_a_booking_is_unbooked_use(alice, bob, eurostar):
    bob.profile.unix_username = "bob"
    bob.profile.save()
    running_booking(alice, eurostar, "0", started_ago=timedelta(minutes=5))
    now = timezone.now()
    report(eurostar, [gpu("bob"), FakeGPU(), FakeGPU(), gpu("mallory")], now)

    detect(now)

    alerts = sorted(open_alerts(Alert.Kind.UNBOOKED_USE), key=lambda a: a.device.index)
    assert [(a.device.index, a.unix_username, a.user_id) for a in alerts] == [(0, "bob", bob.pk), (3, "mallory", None)]
    bob_pid, mallory_pid = (a.device.samples.get().processes[0]["pid"] for a in alerts)
    assert alerts[0].message == f"bob (unix user bob) runs process {bob_pid} on GPU 0 on eurostar (booked by Alice Liddell) without a booking on it."
    assert alerts[1].message == (
        f"unix user mallory (no member has this user name) runs process {mallory_pid} on GPU 3 on eurostar "
        "(not booked) without a booking on it."
    )


def test_unbooked_use_is_resolved_when_the_process_is_gone(alice, eurostar):
    now = timezone.now()
    report(eurostar, [gpu("mallory"), FakeGPU(), FakeGPU(), FakeGPU()], now)
    detect(now)

    report(eurostar, [FakeGPU(), FakeGPU(), FakeGPU(), FakeGPU()], now + timedelta(seconds=15))
    detect(now + timedelta(seconds=15))

    assert open_alerts(Alert.Kind.UNBOOKED_USE) == []
    assert Alert.objects.get(kind=Alert.Kind.UNBOOKED_USE).resolved_at == now + timedelta(seconds=15)


def test_a_host_silent_for_three_intervals_is_stale_until_it_reports_again(eurostar):
    now = timezone.now()
    report(eurostar, [FakeGPU() for _ in range(4)], now - timedelta(seconds=46))

    detect(now)

    (alert,) = open_alerts(Alert.Kind.HOST_STALE)
    assert alert.server_id == eurostar.pk
    assert alert.message.startswith("eurostar has sent no GPU reading for under a minute")

    report(eurostar, [FakeGPU() for _ in range(4)], now + timedelta(seconds=10))
    detect(now + timedelta(seconds=10))
    assert open_alerts(Alert.Kind.HOST_STALE) == []


@pytest.mark.django_db(transaction=True)
def test_two_detectors_at_once_open_each_alert_once(db_vendor, eurostar):
    if db_vendor != "postgresql":
        pytest.skip("checked in the PostgreSQL pass of CI (DATABASE_URL=postgres://...)")
    now = timezone.now()
    report(eurostar, [gpu("mallory"), gpu("trudy"), FakeGPU(), FakeGPU()], now - timedelta(seconds=50))
    report(eurostar, [gpu("mallory"), gpu("trudy"), FakeGPU(), FakeGPU()], now - timedelta(seconds=1))
    barrier = threading.Barrier(4)
    errors = []

    def run():
        try:
            barrier.wait()
            detect(now)
        except Exception as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Alert.objects.filter(kind=Alert.Kind.UNBOOKED_USE, resolved_at__isnull=True).count() == 2
