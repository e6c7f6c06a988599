"""The time and state questions asked of bookings and allocations: overlapping, at, holding, active."""
from datetime import timedelta

from reservations import services
from reservations.models import Allocation, Booking


def test_overlapping_takes_what_shares_time_and_not_what_touches_it(alice, thalys, book, later):
    booked = book(alice, later, hours=2, server="thalys", devices="0")
    hour = timedelta(hours=1)
    assert list(Booking.objects.overlapping(later + hour, later + 3 * hour)) == [booked]
    assert list(Booking.objects.overlapping(later - hour, later)) == []  # ends where the booking starts
    assert list(Booking.objects.overlapping(later + 2 * hour, later + 3 * hour)) == []  # starts where it ends
    assert list(Allocation.objects.overlapping(later - hour, later + hour).values_list("booking_id", flat=True)) == [booked.pk]


def test_at_takes_what_runs_from_its_start_to_before_its_end(alice, thalys, book, later):
    booked = book(alice, later, hours=2, server="thalys", devices="0")
    assert list(Booking.objects.at(later)) == [booked]
    assert list(Booking.objects.at(later + timedelta(hours=2))) == []
    assert list(Booking.objects.at(later - timedelta(minutes=1))) == []


def test_a_cancelled_booking_neither_holds_nor_keeps_active_allocations(alice, bob, thalys, book, later):
    kept = book(alice, later, server="thalys", devices="0")
    cancelled = book(bob, later, server="thalys", devices="1")
    services.cancel_booking(cancelled, by=bob)
    assert list(Booking.objects.holding()) == [kept]
    assert set(Allocation.objects.active().values_list("booking_id", flat=True)) == {kept.pk}
    assert set(Allocation.objects.values_list("booking_id", flat=True)) == {kept.pk, cancelled.pk}
