"""The Now page shows staff the bookings awaiting their approval (members see none of it), in a few queries."""
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reservations import services
from tests.factories import ServerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending(bob):
    shinkansen = ServerFactory(name="shinkansen", gpus=2, requires_approval=True)
    start = timezone.now() + timedelta(days=1)
    return [
        services.create_booking(bob, start=start + timedelta(hours=8 * i), end=start + timedelta(hours=8 * i + 2),
                                server=shinkansen.name, devices=str(i % 2), purpose=f"run {i}")
        for i in range(3)
    ]


def test_staff_see_what_awaits_their_approval_with_links_to_decide(client, staff, pending, django_assert_max_num_queries):
    client.force_login(staff)

    with django_assert_max_num_queries(16):
        page = client.get(reverse("now")).content.decode()

    assert 'id="awaiting-approval"' in page and "3 bookings, staff only" in page
    for booking in pending:
        assert reverse("booking-decide", args=[booking.pk]) in page
    assert page.index("run 0") < page.index("run 1") < page.index("run 2")  # soonest first


def test_the_htmx_panel_keeps_the_list(client, staff, pending):
    client.force_login(staff)

    assert 'id="awaiting-approval"' in client.get(reverse("now-panel")).content.decode()


def test_members_do_not_see_the_approval_list(client, alice, pending):
    client.force_login(alice)

    assert "awaiting-approval" not in client.get(reverse("now")).content.decode()


def test_nothing_pending_shows_no_list(client, staff):
    client.force_login(staff)

    assert "awaiting-approval" not in client.get(reverse("now")).content.decode()
