"""A recurring booking in a real browser: taken dates listed, the others booked, then the whole series cancelled."""
from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from reservations import services
from reservations.models import Booking, BookingSeries, Profile
from tests.factories import RoomFactory, UserFactory

from .conftest import accessibility_problems, sign_in

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "series-pass-42"


@pytest.fixture
def members(db):
    alice = UserFactory(username="alice", first_name="Alice", last_name="Liddell")
    alice.set_password(PASSWORD)
    alice.save()
    Profile.objects.update_or_create(user=alice, defaults={"time_zone": "UTC"})
    RoomFactory(name="Lab 2")
    return alice, UserFactory(username="bob", first_name="Bob", last_name="Marley")


def test_a_member_books_a_weekly_series_skips_a_taken_date_and_cancels_the_rest(browse, shoot, members):
    alice, bob = members
    day = timezone.localdate(timezone.now()) + timedelta(days=3)
    first = datetime.combine(day, time(10), tzinfo=timezone.get_fixed_timezone(0))
    services.create_booking(bob, start=first + timedelta(weeks=1), end=first + timedelta(weeks=1, hours=1), room="Lab 2", purpose="bob's seminar")

    page = browse("desktop")
    sign_in(page, "alice", PASSWORD)
    page.goto("/book/?room=Lab%202")
    page.get_by_label("Start").fill(first.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("1h", exact=True).check()
    page.get_by_label("Repeat", exact=True).select_option("weekly")
    page.get_by_label("Repeat until").fill((day + timedelta(weeks=3)).isoformat())
    page.get_by_label("Purpose").fill("reading group")
    page.get_by_role("button", name="Book", exact=True).click()

    refused = page.locator("#series-refused")
    expect(refused).to_contain_text("1 of 4 dates cannot be booked")
    expect(refused).to_contain_text("bob's seminar")
    shoot(page, "series-refused-desktop")
    assert not accessibility_problems(page)
    assert not Booking.objects.filter(user=alice).exists()

    page.get_by_role("button", name="Book the 3 others, skip this").click()
    expect(page.locator("main")).to_contain_text("3 dates; skipped 1 taken date")
    assert Booking.objects.filter(user=alice, status="confirmed").count() == 3

    phone = browse("phone")
    sign_in(phone, "alice", PASSWORD)
    phone.goto("/mine/")
    expect(phone.locator(".series-mark")).to_have_count(3)
    shoot(phone, "series-mine-phone")
    assert phone.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 1
    assert not accessibility_problems(phone)

    page.goto("/mine/")
    page.get_by_role("link", name="Cancel the whole series…").first.click()
    expect(page.locator("main")).to_contain_text("These 3 dates will be cancelled")
    page.get_by_role("button", name="Cancel 3 dates").click()
    expect(page.locator("main")).to_contain_text(f"Cancelled 3 dates of series #{BookingSeries.objects.get().pk}")
    assert not Booking.objects.filter(user=alice, status="confirmed").exists()
