"""Staff in a real browser: the alerts list gives the message its room at 1440 px, and the Now page lists the
bookings awaiting their approval with links to decide."""
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from monitoring.models import Alert
from reservations import services
from tests.factories import ServerFactory, UserFactory

from .conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "staff-pass-42"


@pytest.fixture
def stella(db):
    user = UserFactory(username="stella", first_name="Stella", last_name="Starling", is_staff=True, is_superuser=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def test_the_alert_message_column_is_wide_enough_to_read_at_1440_px(browse, stella):
    thalys = ServerFactory(name="thalys", gpus=2)
    moment = timezone.now()
    message = ("Bob Marley (unix user bob) runs processes 4242, 4243, 4244 on GPU 1 on thalys (booked by Alice Liddell) "
               "without a booking on it.")
    for i in range(3):
        Alert.objects.create(kind=Alert.Kind.UNBOOKED_USE, key=f"unbooked:{i}", server=thalys, device=thalys.devices.get(index=1),
                             unix_username="bob", message=message, action="", opened_at=moment, last_seen_at=moment)
    page = browse("desktop")
    sign_in(page, "stella", PASSWORD)

    page.goto("/admin/monitoring/alert/")

    sizes = page.evaluate(
        "() => { const cell = document.querySelector('#result_list td.field-message');"
        " return {width: cell.getBoundingClientRect().width, height: cell.getBoundingClientRect().height,"
        " line: parseFloat(getComputedStyle(cell).lineHeight) || 16,"
        " scroll: document.documentElement.scrollWidth, view: document.documentElement.clientWidth}; }"
    )
    assert sizes["width"] >= 300, sizes
    assert sizes["height"] <= 4 * sizes["line"] + 16, sizes  # a few lines, not fifteen
    assert sizes["scroll"] <= sizes["view"], sizes  # no sideways scroll
    expect(page.locator("#result_list td.field-opened_at").first).not_to_contain_text("m.")


def test_staff_see_bookings_awaiting_approval_on_the_now_page_and_decide_from_there(browse, stella):
    shinkansen = ServerFactory(name="shinkansen", gpus=2, requires_approval=True)
    bob = UserFactory(username="bob", first_name="Bob", last_name="Marley")
    start = timezone.now() + timedelta(days=1)
    booking = services.create_booking(bob, start=start, end=start + timedelta(hours=6), server=shinkansen.name, purpose="13B model")
    assert booking.status == "pending"
    page = browse("desktop")
    sign_in(page, "stella", PASSWORD)

    awaiting = page.locator("#awaiting-approval")
    expect(awaiting).to_contain_text("Awaiting your approval")
    expect(awaiting).to_contain_text("shinkansen (whole server)")
    expect(awaiting).to_contain_text("Bob Marley")
    awaiting.get_by_role("link", name="Approve or decline").click()

    page.wait_for_url(f"**/bookings/{booking.pk}/decide/")
