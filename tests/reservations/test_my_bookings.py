from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from reservations import services
from reservations.models import Booking

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def running(alice, thalys):
    now = timezone.now()
    return services.create_booking(alice, start=now, end=now + 2 * H, server="thalys", devices="0", purpose="training")


@pytest.fixture
def upcoming(alice, thalys, later):
    return services.create_booking(alice, start=later, end=later + H, server="thalys", devices="1-2", purpose="eval")


def test_my_bookings_lists_running_upcoming_and_past(client, alice, running, upcoming, thalys):
    start = timezone.now() - timedelta(days=2)
    past = services.create_booking(alice, start=start, end=start + H, server="thalys", devices="3", now=start)
    client.force_login(alice)

    page = client.get("/mine/").content.decode()

    running_at, upcoming_at, past_at = page.index("Running"), page.index("Upcoming"), page.index("Past, released")
    assert running_at < page.index(f'id="booking-{running.pk}"') < upcoming_at
    assert upcoming_at < page.index(f'id="booking-{upcoming.pk}"') < past_at
    assert past_at < page.index(f'id="booking-{past.pk}"')


def test_cancel_an_upcoming_booking(client, alice, upcoming):
    client.force_login(alice)

    response = client.post(f"/bookings/{upcoming.pk}/cancel/")

    assert response.status_code == 302 and response["Location"] == "/mine/"
    upcoming.refresh_from_db()
    assert upcoming.status == Booking.Status.CANCELLED


def test_cancelling_someone_elses_booking_is_forbidden(client, bob, upcoming):
    client.force_login(bob)

    response = client.post(f"/bookings/{upcoming.pk}/cancel/")

    assert response.status_code == 403
    assert "belongs to alice" in response.content.decode()
    upcoming.refresh_from_db()
    assert upcoming.status == Booking.Status.CONFIRMED


def test_staff_may_cancel_anyones_booking(client, staff, upcoming):
    client.force_login(staff)

    assert client.post(f"/bookings/{upcoming.pk}/cancel/").status_code == 302
    upcoming.refresh_from_db()
    assert upcoming.status == Booking.Status.CANCELLED


def test_release_now_ends_a_running_booking(client, alice, running):
    client.force_login(alice)
    before = timezone.now()

    client.post(f"/bookings/{running.pk}/release/")

    running.refresh_from_db()
    assert running.status == Booking.Status.RELEASED
    assert before <= running.end <= timezone.now()


def test_extend_into_another_booking_shows_the_holder_inline(client, alice, bob, upcoming, later):
    services.create_booking(bob, start=later + H, end=later + 2 * H, server="thalys", devices="2", purpose="bob's run")
    client.force_login(alice)

    response = client.post(f"/bookings/{upcoming.pk}/extend/", {"duration": "1h"})

    assert response.status_code == 409
    page = response.content.decode()
    assert "GPU 2 on thalys is booked by bob" in page and "(bob&#x27;s run)" in page
    upcoming.refresh_from_db()
    assert upcoming.end == later + H


def test_extend_with_a_bad_duration_says_what_would_be_right(client, alice, upcoming):
    client.force_login(alice)

    response = client.post(f"/bookings/{upcoming.pk}/extend/", {"duration": "2x"})

    assert response.status_code == 400
    assert "&#x27;2x&#x27; is not a duration; use e.g. 30m, 2h" in response.content.decode()


def test_htmx_actions_answer_with_the_updated_row(client, alice, upcoming):
    client.force_login(alice)

    response = client.post(f"/bookings/{upcoming.pk}/extend/", {"duration": "30m"}, HTTP_HX_TARGET=f"booking-{upcoming.pk}", **HTMX)

    assert response.status_code == 200
    row = response.content.decode()
    assert row.lstrip().startswith('<div class="booking-row"') and "<html" not in row
    assert "Extended booking" in row


def test_htmx_errors_come_back_inline_in_the_row(client, alice, running):
    client.force_login(alice)

    response = client.post(f"/bookings/{running.pk}/cancel/", HTTP_HX_TARGET=f"booking-{running.pk}", **HTMX)

    assert response.status_code == 200  # htmx swaps only successful answers
    assert "already started; release it" in response.content.decode()


def test_actions_from_the_now_page_refresh_the_now_panel(client, alice, running):
    client.force_login(alice)

    response = client.post(f"/bookings/{running.pk}/extend/", {"duration": "1h"}, HTTP_HX_TARGET="now-panel", **HTMX)

    assert response.content.decode().lstrip().startswith('<div id="now-panel"')
    running.refresh_from_db()
    assert running.end - running.start == 3 * H


def test_change_time_moves_an_upcoming_booking(client, alice, upcoming, later):
    client.force_login(alice)
    new_start = later + 3 * H

    client.post(f"/bookings/{upcoming.pk}/change/", {"start": f"{new_start:%Y-%m-%dT%H:%M}", "end": f"{new_start + H:%Y-%m-%dT%H:%M}"})

    upcoming.refresh_from_db()
    assert (upcoming.start, upcoming.end) == (new_start, new_start + H)


def test_change_time_of_a_running_booking_moves_only_its_end(client, alice, running):
    client.force_login(alice)
    new_end = (running.end + H).replace(second=0, microsecond=0)

    client.post(f"/bookings/{running.pk}/change/", {"end": f"{new_end:%Y-%m-%dT%H:%M}"})

    running.refresh_from_db()
    assert running.end == new_end


@pytest.mark.parametrize(
    "data, message",
    [
        ({"start": "yesterday", "end": "2030-01-01T10:00"}, "Start: Enter a valid date/time."),
        ({"start": "2030-01-01T10:00"}, "End: This field is required."),
        ({"start": "2030-01-01T10:00", "end": "2030-01-01T09:00"}, "The end must be after the start."),
    ],
)
def test_change_time_with_bad_input_is_refused_inline(client, alice, upcoming, data, message):
    client.force_login(alice)

    response = client.post(f"/bookings/{upcoming.pk}/change/", data)

    assert response.status_code == 400
    assert message in response.content.decode()


def test_unknown_booking_is_404(client, alice):
    client.force_login(alice)

    assert client.post("/bookings/999999/cancel/").status_code == 404


def test_actions_take_posts_only(client, alice, upcoming):
    client.force_login(alice)

    assert client.get(f"/bookings/{upcoming.pk}/cancel/").status_code == 405


def test_actions_need_the_csrf_token(alice, upcoming):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)

    assert browser.post(f"/bookings/{upcoming.pk}/cancel/").status_code == 403
    upcoming.refresh_from_db()
    assert upcoming.status == Booking.Status.CONFIRMED


def test_next_may_not_send_the_member_elsewhere(client, alice, upcoming):
    client.force_login(alice)

    response = client.post(f"/bookings/{upcoming.pk}/cancel/", {"next": "https://evil.example.com/"})

    assert response["Location"] == "/mine/"
