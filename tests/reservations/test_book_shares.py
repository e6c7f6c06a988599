"""The booking form and pages with shares of a server's pooled CPU cores and memory."""
import re
from datetime import timedelta

import pytest

from reservations.models import Booking
from reservations.services import create_booking
from tests.factories import ServerFactory
from tests.reservations.test_book_page import field_error, form, held_indices

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)


@pytest.fixture
def big(db):
    """Two GPUs with 128 cores and 1 TiB to share."""
    return ServerFactory(name="big", gpus=2, cpu_cores=128, memory_gib=1024)


def shares_form(later, **changes):
    return form(later, **{"what": "shares", "server": "big", "gpus": [], **changes})


def test_a_share_only_booking_is_made_from_the_form(client, alice, big, later):
    client.force_login(alice)

    response = client.post("/book/", shares_form(later, cpu_cores="16", memory_gib="64G"), follow=True)

    booking = Booking.objects.get()
    assert (booking.server, booking.whole_server, booking.cpu_cores, booking.memory_gib) == (big, False, 16, 64)
    assert booking.allocations.count() == 0  # holds no GPU and not the server as a whole
    assert "Booked big: 16 CPU cores, 64 GiB," in response.content.decode()


def test_shares_go_with_gpus_too(client, alice, big, later):
    client.force_login(alice)

    client.post("/book/", form(later, server="big", gpus=["big:1"], cpu_cores="8", memory_gib="1T"))

    booking = Booking.objects.get()
    assert held_indices(booking) == [1] and (booking.cpu_cores, booking.memory_gib) == (8, 1024)
    assert booking.what == "big:1 + 8 CPU cores, 1024 GiB"


def test_more_than_is_free_is_an_inline_error_under_the_right_field(client, alice, bob, big, later):
    create_booking(bob, start=later, end=later + H, server="big", memory_gib=1000)
    client.force_login(alice)

    response = client.post("/book/", shares_form(later, memory_gib="64"))

    page = response.content.decode()
    assert response.status_code == 200
    assert Booking.objects.count() == 1
    assert "1000 are booked" in field_error(page, "memory_gib") and "24 are free then" in field_error(page, "memory_gib")
    assert field_error(page, "cpu_cores") == ""


def test_more_cores_than_the_server_has_is_an_error_under_cpu_cores(client, alice, big, later):
    client.force_login(alice)

    page = client.post("/book/", shares_form(later, cpu_cores="129")).content.decode()

    assert "has 128 CPU cores in all; you asked for 129" in field_error(page, "cpu_cores")
    assert not Booking.objects.exists()


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"memory_gib": "512M"}, "memory_gib", "whole GiB"),
        ({"memory_gib": "lots"}, "memory_gib", "not an amount of memory; write GiB like 64, 64G"),
        ({"cpu_cores": "-2"}, "cpu_cores", "not a number of CPU cores"),
        ({}, "cpu_cores", "Ask for CPU cores or memory"),
        ({"cpu_cores": "4", "gpus": ["big:0"]}, "devices", "clear the GPUs"),
        ({"cpu_cores": "4", "what": "server"}, "cpu_cores", "A whole server comes with all its cores and memory"),
        ({"cpu_cores": "4", "what": "room"}, "cpu_cores", "A room has no CPU cores or memory"),
    ],
)
def test_bad_amounts_are_inline_errors(client, alice, big, room, later, changes, field, message):
    client.force_login(alice)

    page = client.post("/book/", shares_form(later, cpu_cores=changes.pop("cpu_cores", ""), **changes)).content.decode()

    assert message in field_error(page, field)
    assert not Booking.objects.exists()


def test_a_server_without_pools_refuses_amounts_inline(client, alice, thalys, later):
    client.force_login(alice)

    page = client.post("/book/", form(later, cpu_cores="4")).content.decode()

    assert "has no pooled CPU cores to book" in field_error(page, "cpu_cores")
    assert not Booking.objects.exists()


def test_the_form_says_each_pooled_servers_capacity(client, alice, big, thalys):
    client.force_login(alice)

    page = client.get("/book/").content.decode()

    assert 'data-pooled="big "' in page
    assert '<p class="help pool" data-server="big">big shares 128 CPU cores and 1024 GiB of memory among its bookings.</p>' in page
    assert 'data-server="thalys">thalys shares' not in page
    assert 'value="shares"' in page and "CPU &amp; memory" in page


def test_a_link_with_amounts_and_no_gpus_prefills_a_share_only_booking(client, alice, big, later):
    client.force_login(alice)

    page = client.get("/book/", {"server": "big", "cpu_cores": "16", "memory_gib": "64G"}).content.decode()

    assert re.search(r'name="what" value="shares"[^>]*checked', page)
    assert not re.search(r'name="what" value="gpus"[^>]*checked', page)
    assert 'name="cpu_cores" id="id_cpu_cores" inputmode="numeric" maxlength="20" size="6" value="16"' in page
    assert "Free: big: 16 CPU cores, 64 GiB," in page  # the link says what: the availability box checks it at once


def test_the_live_check_reports_capacity_left_for_shares(client, alice, bob, big, later):
    create_booking(bob, start=later, end=later + H, server="big", cpu_cores=120)
    client.force_login(alice)

    fits = client.post("/book/check/", shares_form(later, cpu_cores="8")).content.decode()
    too_many = client.post("/book/check/", shares_form(later, cpu_cores="9")).content.decode()

    assert "Free: big: 8 CPU cores," in fits
    assert "8 are free then and you asked for 9" in too_many


def test_booking_page_and_my_bookings_show_the_shares(client, alice, big, later):
    booking = create_booking(alice, start=later, end=later + H, server="big", cpu_cores=16, memory_gib=64)
    client.force_login(alice)

    detail = client.get(f"/bookings/{booking.pk}/").content.decode()
    mine = client.get("/mine/").content.decode()

    assert "big: 16 CPU cores, 64 GiB" in detail
    assert "big: 16 CPU cores, 64 GiB" in mine


def test_a_whole_server_refused_for_the_shares_booked_says_so_under_the_server(client, alice, bob, big, later):
    create_booking(bob, start=later, end=later + H, server="big", cpu_cores=1)
    client.force_login(alice)

    page = client.post("/book/", form(later, what="server", server="big", gpus=[])).content.decode()

    assert "so 127 are free then and you asked for all of them (the whole server)" in field_error(page, "server")
    assert Booking.objects.count() == 1


def test_the_live_check_of_a_whole_server_counts_the_shares_booked_on_it(client, alice, bob, big, later):
    create_booking(bob, start=later, end=later + H, server="big", memory_gib=8)
    client.force_login(alice)

    taken = client.post("/book/check/", form(later, what="server", server="big", gpus=[])).content.decode()
    after = client.post("/book/check/", form(later + H, what="server", server="big", gpus=[])).content.decode()

    assert "8 are booked" in taken and "Free:" not in taken
    assert "Free: big (whole server)" in after
