"""A booking's page (/bookings/<pk>/) and its .ics."""
import re
from datetime import UTC, timedelta

import pytest
from django.utils import timezone
from icalendar import Calendar

from reservations.services import cancel_booking, create_booking

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)


def actions(page):
    """The labels of the action buttons on a booking's page."""
    card = page.split('class="card booking"', 1)[1].split("</section>", 1)[0]
    return re.findall(r"<button[^>]*>([^<]+)</button>", card)


def event_of(response):
    calendar = Calendar.from_ical(response.content)
    (event,) = calendar.walk("VEVENT")
    return calendar, event


@pytest.fixture
def upcoming(alice, thalys, later):
    thalys.location = "Machine room B, rack 3"
    thalys.save()
    return create_booking(alice, start=later, end=later + 2 * H, server="thalys", devices="0-1", purpose="training resnet")


@pytest.fixture
def running(alice, thalys):
    now = timezone.now()
    return create_booking(alice, start=now, end=now + H, server="thalys", devices="4")


@pytest.mark.parametrize("path", ["/bookings/{pk}/", "/bookings/{pk}.ics"])
def test_booking_pages_need_a_login(client, upcoming, path):
    response = client.get(path.format(pk=upcoming.pk))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("path", ["/bookings/999999/", "/bookings/999999.ics"])
def test_unknown_booking_is_404(client, alice, path):
    client.force_login(alice)

    assert client.get(path).status_code == 404


def test_detail_shows_what_when_status_purpose_who_and_source(client, alice, upcoming, later):
    client.force_login(alice)

    page = client.get(f"/bookings/{upcoming.pk}/").content.decode()

    end = timezone.localtime(later + 2 * H)
    assert "thalys:0-1" in page
    assert f"{timezone.localtime(later):%a %d %b %H:%M}–{end:%H:%M} {end.tzname()}" in page
    assert "upcoming" in page
    assert "training resnet" in page
    assert "Alice Liddell" in page
    assert "via web" in page
    assert "Machine room B, rack 3" in page
    assert f'href="/bookings/{upcoming.pk}.ics"' in page


def test_owner_may_extend_or_cancel_an_upcoming_booking(client, alice, upcoming):
    client.force_login(alice)

    page = client.get(f"/bookings/{upcoming.pk}/").content.decode()

    assert actions(page) == ["Extend +1h", "Cancel"]
    assert f'action="/bookings/{upcoming.pk}/cancel/"' in page
    assert f'action="/bookings/{upcoming.pk}/extend/"' in page
    assert 'name="duration" value="1h"' in page


def test_owner_may_extend_or_release_a_running_booking(client, alice, running):
    client.force_login(alice)

    page = client.get(f"/bookings/{running.pk}/").content.decode()

    assert actions(page) == ["Extend +1h", "Release now"]
    assert f'action="/bookings/{running.pk}/release/"' in page


def test_another_member_sees_the_booking_but_no_actions(client, bob, upcoming):
    client.force_login(bob)

    response = client.get(f"/bookings/{upcoming.pk}/")

    assert response.status_code == 200
    assert "training resnet" in response.content.decode()
    assert actions(response.content.decode()) == []


def test_staff_may_act_on_anyones_booking(client, staff, upcoming):
    client.force_login(staff)

    page = client.get(f"/bookings/{upcoming.pk}/").content.decode()

    assert actions(page) == ["Extend +1h", "Cancel"]


def test_cancelled_booking_offers_no_actions(client, alice, upcoming):
    cancel_booking(upcoming, by=alice)
    client.force_login(alice)

    page = client.get(f"/bookings/{upcoming.pk}/").content.decode()

    assert "cancelled" in page
    assert actions(page) == []


# --- .ics ----------------------------------------------------------------------------------


def test_ics_is_a_calendar_attachment(client, alice, upcoming):
    client.force_login(alice)

    response = client.get(f"/bookings/{upcoming.pk}.ics")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="booking-{upcoming.pk}.ics"'


def test_ics_event_has_uid_times_summary_and_status(client, settings, alice, upcoming, later):
    settings.SITE_URL = "http://localhost:8000"
    client.force_login(alice)

    calendar, event = event_of(client.get(f"/bookings/{upcoming.pk}.ics"))

    assert str(calendar["PRODID"]) == "-//labres//labres bookings//EN"
    assert str(calendar["VERSION"]) == "2.0"
    assert str(event["UID"]) == f"booking-{upcoming.pk}@localhost"  # SITE_URL's host, as in feeds and e-mails
    assert event.decoded("DTSTART") == later
    assert event.decoded("DTEND") == later + 2 * H
    assert event.decoded("DTSTART").utcoffset() == timedelta(0)
    assert str(event["SUMMARY"]) == "GPU thalys:0-1 — training resnet"
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["DESCRIPTION"]) == f"Purpose: training resnet\nhttp://testserver/bookings/{upcoming.pk}/"
    assert str(event["URL"]) == f"http://testserver/bookings/{upcoming.pk}/"
    assert str(event["LOCATION"]) == "Machine room B, rack 3"
    assert event.decoded("CREATED") == upcoming.created_at.replace(microsecond=0)
    assert event.decoded("LAST-MODIFIED") == upcoming.updated_at.replace(microsecond=0)
    assert event.decoded("DTSTAMP").tzinfo is not None
    assert event["SEQUENCE"] == 0


def test_ics_of_a_cancelled_booking_says_cancelled(client, alice, upcoming):
    cancel_booking(upcoming, by=alice)
    client.force_login(alice)

    _, event = event_of(client.get(f"/bookings/{upcoming.pk}.ics"))

    assert str(event["STATUS"]) == "CANCELLED"


def test_ics_of_anothers_booking_is_visible_to_members(client, bob, upcoming):
    client.force_login(bob)

    assert client.get(f"/bookings/{upcoming.pk}.ics").status_code == 200


@pytest.mark.parametrize(
    "target, purpose, summary",
    [
        ({"server": "thalys"}, "maintenance", "Server thalys (whole) — maintenance"),
        ({"room": "Lab 2"}, "reading group", "Room Lab 2 — reading group"),
        ({"server": "thalys", "devices": "5"}, "", "GPU thalys:5"),
    ],
    ids=["whole_server", "room", "no_purpose"],
)
def test_ics_summary_names_what_is_booked(client, alice, thalys, room, later, target, purpose, summary):
    booking = create_booking(alice, start=later, end=later + H, purpose=purpose, **target)
    client.force_login(alice)

    _, event = event_of(client.get(f"/bookings/{booking.pk}.ics"))

    assert str(event["SUMMARY"]) == summary


def test_ics_uid_is_the_sites_host_whatever_address_served_it(client, settings, alice, upcoming):
    settings.ALLOWED_HOSTS = ["labres.example.org", "gpu-portal.internal"]
    settings.SITE_URL = "https://labres.example.org:8443"
    client.force_login(alice)

    _, event = event_of(client.get(f"/bookings/{upcoming.pk}.ics", HTTP_HOST="gpu-portal.internal:8000"))

    # One UID for the feed, the download and the e-mail, so a calendar that got all three keeps one event.
    assert str(event["UID"]) == f"booking-{upcoming.pk}@labres.example.org"
    assert str(event["URL"]) == f"http://gpu-portal.internal:8000/bookings/{upcoming.pk}/"


def test_ics_times_are_in_utc_whatever_the_members_zone(client, alice, upcoming, later):
    from reservations.models import Profile

    Profile.objects.update_or_create(user=alice, defaults={"time_zone": "America/New_York"})
    client.force_login(alice)

    body = client.get(f"/bookings/{upcoming.pk}.ics").content.decode()

    assert f"DTSTART:{later.astimezone(UTC):%Y%m%dT%H%M%S}Z" in body


def usage_card(page):
    return page.split('class="card usage"', 1)[1].split("</section>", 1)[0]


def test_a_running_booking_shows_its_use_so_far(client, alice, thalys):
    from monitoring.models import GpuSample

    start = timezone.now() - timedelta(minutes=5)
    running = create_booking(alice, start=start, end=start + H, server="thalys", devices="4", now=start)
    gpu = thalys.devices.get(index=4)
    GpuSample.objects.bulk_create([
        GpuSample(device=gpu, taken_at=running.start + timedelta(seconds=15 * i), gpu_util=util, memory_used_mib=40960, error="")
        for i, util in enumerate([0, 50, 100])
    ])
    client.force_login(alice)

    card = usage_card(client.get(f"/bookings/{running.pk}/").content.decode())

    assert "Actual use so far" in card
    assert "50% on average, 100% at peak" in card
    assert "40.0 GiB" in card
    assert "From 3 GPU readings (every sample)" in card


def test_an_ended_booking_shows_its_settled_use_and_its_idle_alert(client, alice, thalys):
    from monitoring.models import Alert, BookingUsage

    start = timezone.now() - 3 * H
    booking = create_booking(alice, start=start, end=start + H, server="thalys", devices="0-1", now=start)
    BookingUsage.objects.create(
        booking=booking, samples=480, gpu_util_mean=3.2, gpu_util_peak=4, memory_peak_mib=900, booked_gpu_hours=2.0,
        used_gpu_hours=0.0, source="raw", settled_at=timezone.now(),
    )
    Alert.objects.create(
        kind=Alert.Kind.IDLE_BOOKING, key=f"idle:{booking.pk}", server=thalys, booking=booking, user=alice,
        message="Booking has used at most 4% of its GPUs for the last 30m.", opened_at=start + H / 2,
        last_seen_at=start + H / 2, resolved_at=start + H,
    )
    client.force_login(alice)

    card = usage_card(client.get(f"/bookings/{booking.pk}/").content.decode())

    assert "3% on average, 4% at peak" in card
    assert "900 MiB" in card
    assert "0.0 used of 2.0 booked" in card
    assert "Idle booking" in card and "at most 4% of its GPUs" in card


def test_upcoming_bookings_and_unmonitored_servers_show_no_use(client, alice, upcoming, thalys):
    client.force_login(alice)
    assert 'class="card usage"' not in client.get(f"/bookings/{upcoming.pk}/").content.decode()

    thalys.monitored = False
    thalys.save()
    now = timezone.now()
    running = create_booking(alice, start=now, end=now + H, server="thalys", devices="6")
    assert 'class="card usage"' not in client.get(f"/bookings/{running.pk}/").content.decode()


def test_a_running_booking_without_readings_says_where_they_come_from(client, alice, running):
    client.force_login(alice)

    card = usage_card(client.get(f"/bookings/{running.pk}/").content.decode())

    assert "No GPU readings for this booking yet" in card and "host agent on thalys" in card
