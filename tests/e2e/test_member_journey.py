"""A member's day in a real browser: sign in, book, see it, meet a conflict, release, cancel."""
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from reservations import services
from reservations.models import Booking
from tests.factories import RoomFactory, ServerFactory, UserFactory

from .conftest import WIDTHS, accessibility_problems, sign_in

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "journey-pass-42"


@pytest.fixture
def lab(db):
    alice = UserFactory(username="alice", first_name="Alice", last_name="Liddell")
    alice.set_password(PASSWORD)
    alice.save()
    bob = UserFactory(username="bob", first_name="Bob", last_name="Marley")
    server = ServerFactory(name="thalys", gpus=8, location="Machine room B")
    room = RoomFactory(name="Lab 2")
    now = timezone.now()
    services.create_booking(bob, start=now, end=now + timedelta(hours=3), server="thalys", devices="2", purpose="bob's eval")
    return {"alice": alice, "bob": bob, "server": server, "room": room}


def test_a_member_books_sees_conflicts_releases_and_cancels(browse, shoot, lab):
    page = browse("desktop")
    sign_in(page, "alice", PASSWORD)

    # Book two GPUs from the form, for two hours from now.
    page.goto("/book/")
    page.get_by_label("Server", exact=True).select_option("thalys")
    page.get_by_label("Or type GPU indices").fill("0-1")
    page.get_by_label("2h", exact=True).check()
    page.get_by_label("Purpose").fill("e2e training")
    expect(page.locator("#book-check")).to_contain_text("Free", timeout=10_000)
    page.get_by_role("button", name="Book", exact=True).click()
    expect(page.locator("main")).to_contain_text("thalys:0-1")
    expect(page.get_by_role("link", name=re.compile("calendar", re.I))).to_be_visible()
    booking = Booking.objects.get(user=lab["alice"], purpose="e2e training")
    assert booking.end - booking.start == timedelta(hours=2)

    # It shows on the Now page as the member's own, and on the timeline.
    page.goto("/")
    expect(page.locator(".unit.mine")).to_have_count(2)
    expect(page.locator(".unit.busy")).to_contain_text("Bob Marley")
    page.goto("/timeline/?view=day")
    expect(page.locator("main")).to_contain_text("e2e training")

    # A conflicting booking names who holds the GPU, in the live check and on submit.
    page.goto("/book/")
    page.get_by_label("Server", exact=True).select_option("thalys")
    page.get_by_label("Or type GPU indices").fill("2")
    page.get_by_label("Purpose").fill("clash")
    expect(page.locator("main")).to_contain_text("GPU 2 on thalys is booked by Bob Marley", timeout=10_000)
    page.get_by_role("button", name="Book", exact=True).click()
    expect(page.locator("main")).to_contain_text("booked by Bob Marley")
    assert not Booking.objects.filter(purpose="clash").exists()

    # Release the running booking early, from My bookings (the page asks to confirm).
    page.goto("/mine/")
    row = page.locator(f"#booking-{booking.pk}")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Release now").click()
    expect(page.locator(f"#booking-{booking.pk}")).to_contain_text("Released booking")
    booking.refresh_from_db()
    assert booking.status == Booking.Status.RELEASED

    # Cancel an upcoming one (the page asks to confirm).
    tomorrow = timezone.now() + timedelta(days=1)
    upcoming = services.create_booking(lab["alice"], start=tomorrow, end=tomorrow + timedelta(hours=1), room="Lab 2", purpose="meeting")
    page.goto("/mine/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"#booking-{upcoming.pk}").get_by_role("button", name="Cancel").click()
    expect(page.locator(f"#booking-{upcoming.pk}")).to_contain_text("Cancelled booking")
    upcoming.refresh_from_db()
    assert upcoming.status == Booking.Status.CANCELLED


@pytest.mark.parametrize("width", list(WIDTHS))
def test_every_page_renders_at_phone_and_desktop_width(browse, shoot, lab, width):
    alice = lab["alice"]
    later = timezone.now() + timedelta(hours=1)
    mine = services.create_booking(alice, start=later, end=later + timedelta(hours=2), server="thalys", devices="0-1", purpose="screenshots")
    page = browse(width)
    page.goto("/accounts/login/")
    shoot(page, f"login-{width}")
    sign_in(page, "alice", PASSWORD)
    pages = {
        "now": "/",
        "timeline-week": "/timeline/",
        "timeline-day": "/timeline/?view=day",
        "book": "/book/?server=thalys&devices=2",
        "booking": f"/bookings/{mine.pk}/",
        "mine": "/mine/",
        "rooms": "/rooms/",
        "room-week": f"/rooms/{lab['room'].pk}/",
        "profile": "/profile/",
    }
    problems = {}
    for name, url in pages.items():
        response = page.goto(url)
        assert response.status == 200, f"{url} answered {response.status}"
        page.wait_for_load_state("networkidle")
        shoot(page, f"{name}-{width}")
        # Nothing but the timeline's own scrolling area may be wider than the screen.
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"{url} is {overflow}px wider than the {width} screen"
        problems[url] = accessibility_problems(page)
    assert not any(problems.values()), "\n".join(f"{url}: {line}" for url, lines in problems.items() for line in lines)
