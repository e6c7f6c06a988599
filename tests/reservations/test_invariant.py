"""The non-overlap invariant in one place: the constraint's error told apart, GPUs added through the service, admin edits as changes."""
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from notifications.models import OutboxEvent
from reservations.errors import BookingConflict
from reservations.models import Allocation, Booking, Device, Unit
from reservations.services.bookings import classify_integrity_error

from .test_admin import change_data, change_url

H = timedelta(hours=1)


def test_an_overlapping_allocation_is_classified_as_the_overlap_and_another_integrity_error_is_not(alice, thalys, book, later):
    booking = book(alice, later, server="thalys", devices="0")
    unit = Unit.objects.get(device__server=thalys, device__index=0)
    with pytest.raises(IntegrityError) as overlap, transaction.atomic():
        Allocation.objects.create(booking=book(alice, later + 2 * H, server="thalys", devices="1"), unit=unit, start=later, end=later + H)
    with pytest.raises(IntegrityError) as twice, transaction.atomic():
        Allocation.objects.create(booking=booking, unit=unit, start=later + 5 * H, end=later + 6 * H)  # unique per booking and unit

    assert classify_integrity_error(overlap.value) == "overlap"
    assert classify_integrity_error(twice.value) is None


def test_a_gpu_added_in_the_admin_is_held_by_a_whole_server_booking_to_come(staff_client, alice, bob, thalys, book, later):
    whole = book(alice, later, server="thalys")

    response = staff_client.post("/admin/reservations/device/add/", {"server": thalys.pk, "index": 8, "model": "", "uuid": "", "active": "on"})

    assert response.status_code == 302
    gpu = Device.objects.get(server=thalys, index=8)
    assert Allocation.objects.filter(booking=whole, unit__device=gpu).exists()
    with pytest.raises(BookingConflict):
        book(bob, later, server="thalys", devices="8")


def test_a_purpose_edited_in_the_admin_is_a_change_with_its_event(staff_client, alice, thalys, book, later):
    booking = book(alice, later, server="thalys", devices="0")
    before = Booking.objects.get(pk=booking.pk).sequence

    response = staff_client.post(change_url(booking), change_data(booking, purpose="training resnet"))

    assert response.status_code == 302
    changed = Booking.objects.get(pk=booking.pk)
    assert (changed.purpose, changed.sequence) == ("training resnet", before + 1)
    assert OutboxEvent.objects.filter(booking=booking, event="changed").exists()
