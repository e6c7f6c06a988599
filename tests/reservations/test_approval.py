"""Approval: bookings of a resource that requires it start pending, hold their slot, and are
approved, declined or expire at their start; only staff decide, each booking once."""
import re
from datetime import timedelta

import pytest
from django.urls import reverse

from reservations import services, tasks
from reservations.errors import BookingConflict, BookingError, NotAllowed, NotPending
from reservations.models import Allocation, Booking
from tests.factories import RoomFactory, ServerFactory

H = timedelta(hours=1)


@pytest.fixture
def h100(db):
    server = ServerFactory(name="h100", gpus=4)
    server.requires_approval = True
    server.save()
    return server


def book(user, start, **target):
    return services.create_booking(user, start=start, end=start + 2 * H, purpose="big run", **target)


def active_units(booking):
    return Allocation.objects.filter(booking=booking, active=True).count()


# --- starting pending ---------------------------------------------------------------------------


def test_a_members_booking_of_such_a_server_starts_pending(alice, h100, later):
    booking = book(alice, later, server=h100, devices="0-1")
    assert booking.status == Booking.Status.PENDING
    assert booking.state() == "pending"
    assert active_units(booking) == 2


def test_whole_server_and_share_bookings_wait_too(alice, h100, later):
    assert book(alice, later, server=h100).status == Booking.Status.PENDING


def test_a_room_that_requires_approval_makes_pending_bookings(alice, later):
    room = RoomFactory(name="Seminar", requires_approval=True)
    assert book(alice, later, room=room).status == Booking.Status.PENDING


def test_other_resources_are_confirmed_directly(alice, thalys, later):
    assert book(alice, later, server=thalys, devices="0").status == Booking.Status.CONFIRMED


def test_staff_bookings_are_confirmed_directly(staff, h100, later):
    assert book(staff, later, server=h100, devices="0").status == Booking.Status.CONFIRMED


def test_bookings_staff_make_in_the_admin_are_confirmed(alice, h100, later):
    booking = book(alice, later, server=h100, devices="0", source=Booking.Source.ADMIN)
    assert booking.status == Booking.Status.CONFIRMED


def test_a_pending_booking_holds_its_slot(alice, bob, h100, later):
    book(alice, later, server=h100, devices="0-1")
    with pytest.raises(BookingConflict, match="GPU 1 on h100 is booked by"):
        book(bob, later + H, server=h100, devices="1-2")
    assert Booking.objects.count() == 1


def test_changing_a_pending_bookings_times_keeps_it_pending(alice, h100, later):
    booking = book(alice, later, server=h100, devices="0")
    booking = services.change_booking(booking, by=alice, start=later + H, end=later + 3 * H)
    assert (booking.status, booking.start) == (Booking.Status.PENDING, later + H)


def test_a_pending_booking_cannot_be_moved_to_start_now(alice, h100, later):
    booking = book(alice, later, server=h100, devices="0")
    with pytest.raises(BookingError, match="awaits approval, so it cannot start right away"):
        services.change_booking(booking, by=alice, start=later - timedelta(minutes=2), now=later - timedelta(minutes=1))
    assert Booking.objects.get(pk=booking.pk).start == later


def test_the_member_may_cancel_their_pending_booking(alice, h100, later):
    booking = services.cancel_booking(book(alice, later, server=h100, devices="0"), by=alice)
    assert booking.status == Booking.Status.CANCELLED and active_units(booking) == 0


# --- deciding -----------------------------------------------------------------------------------


def test_approving_confirms_it_and_records_who(alice, staff, h100, later):
    booking = book(alice, later, server=h100, devices="0-1")
    booking = services.approve_booking(booking, by=staff)
    booking.refresh_from_db()
    assert (booking.status, booking.decision, booking.decided_by) == ("confirmed", "approved", staff)
    assert booking.decided_at is not None and active_units(booking) == 2


def test_declining_cancels_it_frees_its_units_and_keeps_the_reason(alice, bob, staff, h100, later):
    booking = book(alice, later, server=h100, devices="0-1")
    services.decline_booking(booking, by=staff, reason="  The H100 is reserved for the paper deadline. ")
    booking.refresh_from_db()
    assert (booking.status, booking.decision) == ("cancelled", "declined")
    assert booking.decision_note == "The H100 is reserved for the paper deadline."
    assert active_units(booking) == 0
    assert book(bob, later, server=h100, devices="0-1").pk  # free at once


def test_members_cannot_approve_or_decline(alice, bob, h100, later):
    booking = book(alice, later, server=h100, devices="0")
    with pytest.raises(NotAllowed, match="Only staff can approve"):
        services.approve_booking(booking, by=bob)
    with pytest.raises(NotAllowed, match="Only staff can decline"):
        services.decline_booking(booking, by=alice)
    booking.refresh_from_db()
    assert booking.status == Booking.Status.PENDING


def test_approving_twice_says_it_was_already_approved(alice, staff, h100, later):
    booking = book(alice, later, server=h100, devices="0")
    services.approve_booking(booking, by=staff)
    with pytest.raises(NotPending, match=r"Booking #\d+ was already approved by stella"):
        services.approve_booking(booking, by=staff)
    with pytest.raises(NotPending, match="was already approved"):
        services.decline_booking(booking, by=staff)


def test_a_confirmed_booking_awaits_no_decision(alice, staff, thalys, later):
    booking = book(alice, later, server=thalys, devices="0")
    with pytest.raises(NotPending, match="is confirmed, not awaiting approval"):
        services.approve_booking(booking, by=staff)


def test_a_too_long_reason_is_refused_and_nothing_changes(alice, staff, h100, later):
    booking = book(alice, later, server=h100, devices="0")
    with pytest.raises(BookingError, match="500 characters"):
        services.decline_booking(booking, by=staff, reason="x" * 501)
    booking.refresh_from_db()
    assert booking.status == Booking.Status.PENDING


# --- expiry ---------------------------------------------------------------------------------------


def test_a_pending_booking_expires_at_its_start_not_before(alice, h100, later):
    booking = book(alice, later, server=h100, devices="0")
    assert services.expire_pending_bookings(now=later - timedelta(seconds=1)) == 0
    booking.refresh_from_db()
    assert booking.status == Booking.Status.PENDING
    assert services.expire_pending_bookings(now=later) == 1
    booking.refresh_from_db()
    assert (booking.status, booking.decision, booking.decided_by) == ("cancelled", "expired", None)
    assert active_units(booking) == 0


def test_expiry_is_idempotent(alice, h100, later):
    booking = book(alice, later, server=h100, devices="0")
    assert services.expire_pending_bookings(now=later + H) == 1
    sequence = Booking.objects.get(pk=booking.pk).sequence
    assert services.expire_pending_bookings(now=later + H) == 0
    assert Booking.objects.get(pk=booking.pk).sequence == sequence


def test_expiry_leaves_decided_bookings_alone(alice, staff, h100, later):
    approved = book(alice, later, server=h100, devices="0")
    services.approve_booking(approved, by=staff)
    assert services.expire_pending_bookings(now=later + H) == 0
    assert Booking.objects.get(pk=approved.pk).status == Booking.Status.CONFIRMED


def test_a_pending_booking_cannot_start_right_away(alice, h100):
    from django.utils import timezone

    now = timezone.now()
    with pytest.raises(BookingError, match="need staff approval, so they cannot start right away") as caught:
        services.create_booking(alice, start=now, end=now + H, server=h100, devices="0", now=now)
    assert caught.value.field == "start" and not Booking.objects.exists()


def test_the_beat_task_expires_what_is_due(alice, h100):
    from django.utils import timezone

    start = timezone.now() + timedelta(seconds=1)
    booking = services.create_booking(alice, start=start, end=start + H, server=h100, devices="0", now=start - timedelta(minutes=1))
    assert booking.status == Booking.Status.PENDING
    Booking.objects.filter(pk=booking.pk).update(start=timezone.now() - timedelta(minutes=1))  # its start has come
    assert tasks.expire_pending_bookings() == 1
    assert Booking.objects.get(pk=booking.pk).decision == "expired"


def test_a_started_pending_booking_cannot_be_approved_any_more(alice, staff, h100, later):
    booking = book(alice, later, server=h100, devices="0")
    with pytest.raises(NotPending, match="not decided before its start"):
        services.approve_booking(booking, by=staff, now=later + timedelta(minutes=1))


# --- races (PostgreSQL, real threads) -------------------------------------------------------------


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_two_staff_deciding_at_once_exactly_one_wins(db_vendor, later):
    if db_vendor != "postgresql":
        pytest.skip("SQLite serializes writers with BEGIN IMMEDIATE; the threads race on PostgreSQL")
    from tests.factories import UserFactory
    from tests.reservations.test_races import race

    server = ServerFactory(name="h100", gpus=2, requires_approval=True)
    member = UserFactory(username="member")
    deciders = [UserFactory(username=f"staff{i}", is_staff=True) for i in range(6)]
    booking = book(member, later, server=server, devices="0-1")
    attempts = [
        (lambda who=who: services.approve_booking(booking, by=who)) if i % 2 else (lambda who=who: services.decline_booking(booking, by=who, reason="no"))
        for i, who in enumerate(deciders)
    ]
    attempts.append(lambda: services.expire_pending_bookings(now=later + H))

    results = race(attempts)

    decided = [r for r in results[:-1] if isinstance(r, Booking)]
    refused = [r for r in results[:-1] if isinstance(r, NotPending)]
    assert len(decided) + (results[-1] == 1) == 1, results
    assert len(refused) + len(decided) == len(deciders), results
    booking.refresh_from_db()
    assert booking.status in (Booking.Status.CONFIRMED, Booking.Status.CANCELLED)


# --- pages ------------------------------------------------------------------------------------------


def test_the_decide_page_shows_the_booking_and_what_is_around_it(client, alice, bob, staff, h100, later):
    neighbour = book(bob, later - 3 * H, server=h100, devices="2")
    booking = book(alice, later, server=h100, devices="0-1")
    client.force_login(staff)
    page = client.get(reverse("booking-decide", args=[booking.pk]))
    text = page.content.decode()
    assert page.status_code == 200
    assert "h100:0-1" in text and 'name="reason"' in text and "csrfmiddlewaretoken" in text
    assert f">{neighbour.pk}</a>" in text


def test_members_get_403_on_the_decide_page(client, alice, h100, later):
    booking = book(alice, later, server=h100, devices="0")
    client.force_login(alice)
    assert client.get(reverse("booking-decide", args=[booking.pk])).status_code == 403
    assert client.post(reverse("booking-decide", args=[booking.pk]), {"action": "approve"}).status_code == 403
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.PENDING


def test_the_decide_page_needs_a_sign_in(client, alice, h100, later):
    booking = book(alice, later, server=h100, devices="0")
    assert client.get(reverse("booking-decide", args=[booking.pk])).status_code == 302


def test_staff_decline_on_the_decide_page_with_a_reason(client, alice, staff, h100, later):
    booking = book(alice, later, server=h100, devices="0")
    client.force_login(staff)
    response = client.post(reverse("booking-decide", args=[booking.pk]), {"action": "decline", "reason": "Not this week."})
    assert response.status_code == 302
    booking.refresh_from_db()
    assert (booking.status, booking.decision_note) == ("cancelled", "Not this week.")


def test_deciding_twice_on_the_page_is_a_409_with_the_reason(client, alice, staff, h100, later):
    booking = book(alice, later, server=h100, devices="0")
    client.force_login(staff)
    client.post(reverse("booking-decide", args=[booking.pk]), {"action": "approve"})
    again = client.post(reverse("booking-decide", args=[booking.pk]), {"action": "decline"})
    assert again.status_code == 409
    assert "was already approved" in again.content.decode()


def test_the_decide_page_of_a_series_date_decides_all_its_pending_dates_at_once(client, alice, staff, h100, later):
    result = services.create_series(alice, start=later, end=later + H, repeat="daily", count=3, server=h100, devices="0")
    first, second, third = result.bookings
    client.force_login(staff)
    page = client.get(reverse("booking-decide", args=[second.pk])).content.decode()
    assert f"Part of series #{result.series.pk}" in page and "3 dates await approval" in page
    assert re.search(r'value="approve_series"[^>]*>Approve all 3 dates', page) and re.search(r'value="decline_series"[^>]*>Decline all 3 dates', page)
    assert reverse("booking-decide", args=[first.pk]) in page and "(this one)" in page

    services.approve_booking(first, by=staff)  # one decided alone first
    response = client.post(reverse("booking-decide", args=[second.pk]), {"action": "decline_series", "reason": "Not every day."})
    assert response.status_code == 302
    statuses = dict(Booking.objects.filter(series=result.series).values_list("pk", "status"))
    assert statuses == {first.pk: "confirmed", second.pk: "cancelled", third.pk: "cancelled"}
    assert Booking.objects.get(pk=third.pk).decision_note == "Not every day."
    after = client.get(reverse("booking-decide", args=[second.pk])).content.decode()
    assert "Declined 2 dates of series" in after and "approve_series" not in after


def test_a_pending_booking_shows_awaiting_approval_to_its_member(client, alice, h100, later):
    booking = book(alice, later, server=h100, devices="0")
    client.force_login(alice)
    assert "awaiting approval" in client.get(reverse("booking-detail", args=[booking.pk])).content.decode()
    assert "awaiting approval" in client.get(reverse("my-bookings")).content.decode()


# --- admin ------------------------------------------------------------------------------------------


def test_admin_actions_approve_and_decline_through_the_services(staff_client, alice, h100, thalys, later):
    first = book(alice, later, server=h100, devices="0")
    second = book(alice, later, server=h100, devices="1")
    confirmed = book(alice, later, server=thalys, devices="0")
    url = reverse("admin:reservations_booking_changelist")
    staff_client.post(url, {"action": "approve_selected", "_selected_action": [first.pk, confirmed.pk]})
    asking = staff_client.post(url, {"action": "decline_selected", "_selected_action": [second.pk, confirmed.pk]})
    page = asking.content.decode()
    assert asking.status_code == 200 and Booking.objects.get(pk=second.pk).status == Booking.Status.PENDING  # asked first
    assert "Decline 1 booking awaiting approval" in page and f"#{second.pk} h100:1" in page and 'name="reason"' in page
    assert "The other selected bookings await no decision" in page

    staff_client.post(url, {"action": "decline_selected", "_selected_action": [second.pk, confirmed.pk], "confirm": "yes", "reason": "Booked for the demo day."})
    assert Booking.objects.get(pk=first.pk).status == Booking.Status.CONFIRMED
    declined = Booking.objects.get(pk=second.pk)
    assert (declined.decision, declined.decision_note) == ("declined", "Booked for the demo day.")
    assert Booking.objects.get(pk=confirmed.pk).decision == ""


def test_admin_decline_with_a_reason_too_long_asks_again(staff_client, alice, h100, later):
    booking = book(alice, later, server=h100, devices="0")
    url = reverse("admin:reservations_booking_changelist")
    again = staff_client.post(url, {"action": "decline_selected", "_selected_action": [booking.pk], "confirm": "yes", "reason": "x" * 501})
    assert again.status_code == 200 and "Keep the reason to 500 characters." in again.content.decode()
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.PENDING


def test_admin_lists_pending_and_links_to_the_decide_page(staff_client, alice, h100, later):
    booking = book(alice, later, server=h100, devices="0")
    listing = staff_client.get(reverse("admin:reservations_booking_changelist") + "?status__exact=pending")
    assert listing.status_code == 200 and "awaiting approval" in listing.content.decode()
    page = staff_client.get(reverse("admin:reservations_booking_change", args=[booking.pk]))
    assert reverse("booking-decide", args=[booking.pk]) in page.content.decode()
    servers = staff_client.get(reverse("admin:reservations_server_changelist"))
    assert "requires_approval" in servers.content.decode()


def test_a_pending_booking_is_next_on_the_board_but_holds_nothing_once_its_start_came(alice, h100, later):
    from reservations.selectors import unit_holdings

    booking = book(alice, later, server=h100, devices="0")
    gpu = h100.devices.get(index=0)
    current, upcoming = unit_holdings(later - H)[("gpu", gpu.pk)]
    assert (current, upcoming.booking_id) == (None, booking.pk)
    assert ("gpu", gpu.pk) not in unit_holdings(later + timedelta(minutes=1))  # undecided: no use is "as booked"
