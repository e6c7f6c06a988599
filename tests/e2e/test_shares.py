"""Shares of a server's pooled CPU cores and memory in a real browser: the form's inputs and the timeline's band."""
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from reservations import services
from reservations.models import Booking
from tests.factories import ServerFactory, UserFactory

from .conftest import WIDTHS, accessibility_problems, sign_in

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "shares-pass-42"


@pytest.fixture
def lab(db):
    alice = UserFactory(username="alice", first_name="Alice", last_name="Liddell")
    alice.set_password(PASSWORD)
    alice.save()
    bob = UserFactory(username="bob")
    ServerFactory(name="thalys", gpus=2)
    ServerFactory(name="ice", gpus=0, cpu_cores=192, memory_gib=1536)
    now = timezone.now()
    services.create_booking(bob, start=now, end=now + timedelta(hours=3), server="ice", cpu_cores=180, purpose="preprocessing")
    return alice


def test_the_form_shows_the_amounts_for_a_pooled_server_and_books_a_share(browse, lab):
    page = browse("desktop")
    sign_in(page, "alice", PASSWORD)
    page.goto("/book/?server=thalys&devices=0")
    shares = page.locator(".shares")
    expect(shares).to_be_hidden()  # thalys shares nothing: no amounts beside its GPUs

    page.get_by_label("CPU & memory").check()
    page.get_by_label("Server", exact=True).select_option("ice")
    expect(page.get_by_text("ice shares 192 CPU cores and 1536 GiB of memory among its bookings.")).to_be_visible()
    page.get_by_label("CPU cores").fill("16")
    expect(page.locator("#book-check")).to_contain_text("192 CPU cores; 180 are booked", timeout=5000)

    page.get_by_label("CPU cores").fill("12")
    page.get_by_label("Memory (GiB)").fill("64G")
    expect(page.locator("#book-check")).to_contain_text("Free: ice: 12 CPU cores, 64 GiB", timeout=5000)
    page.get_by_role("button", name="Book", exact=True).click()

    expect(page.locator("h2.what")).to_have_text("ice: 12 CPU cores, 64 GiB")
    assert Booking.objects.filter(user=lab, cpu_cores=12, memory_gib=64).exists()


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_band_and_the_form_pass_the_accessibility_checks(browse, lab, width):
    page = browse(width)
    sign_in(page, "alice", PASSWORD)
    problems = []
    for url in ("/timeline/?view=day", "/book/?server=ice&cpu_cores=4"):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        problems += [f"{url}: {line}" for line in accessibility_problems(page)]
    assert not problems, "\n".join(problems)
    page.goto("/timeline/?view=day")
    assert page.locator(".tl-band .use").first.get_attribute("title").startswith("180 of 192 cores, 0 of 1536 GiB booked")
