"""The read serializers' fast output (DeclaredOutput) is what DRF's own Serializer.to_representation gives."""
from datetime import timedelta

import pytest
from rest_framework import serializers

from reservations import services
from reservations.api.serializers import AuditEntrySerializer, BookingSerializer
from reservations.api.views import bookings_with_relations
from reservations.models import BookingAuditEntry, Server
from reservations.selectors import booking_history

from ..factories import RoomFactory, ServerFactory

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)


@pytest.fixture
def bookings(alice, staff, thalys, later):
    """One booking of every shape the API shows: GPUs, a whole server, a room, a share, a series date, pending,
    cancelled, changed, and released (running)."""
    pooled = ServerFactory(name="pool", gpus=2, cpu_cores=32, memory_gib=128)
    ask = ServerFactory(name="ask", gpus=2)
    Server.objects.filter(pk=ask.pk).update(requires_approval=True)
    room = RoomFactory(name="Lab 2")
    made = [
        services.create_booking(alice, start=later, end=later + H, server=thalys, devices="0-1", purpose="gpus"),
        services.create_booking(alice, start=later + 2 * H, end=later + 3 * H, server=thalys, purpose=""),
        services.create_booking(alice, start=later, end=later + H, room=room, purpose="meeting"),
        services.create_booking(alice, start=later, end=later + H, server=pooled, cpu_cores=4, memory_gib=16),
        services.create_booking(alice, start=later, end=later + H, server=pooled, devices="1", memory_gib=8),
        services.create_booking(alice, start=later + 5 * H, end=later + 6 * H, server=Server.objects.get(pk=ask.pk), devices="0"),
    ]
    made += services.create_series(alice, start=later + 8 * H, end=later + 9 * H, repeat="daily", count=2, server=thalys, devices="3").bookings
    services.cancel_booking(made[1], by=staff)
    services.change_booking(made[0], by=alice, purpose="longer", end=later + 2 * H - timedelta(minutes=30))
    return made


def test_bookings_read_as_drf_reads_them(bookings, clock):
    rows = list(bookings_with_relations().filter(pk__in=[booking.pk for booking in bookings]).order_by("pk"))
    serializer = BookingSerializer(rows, many=True, context={"now": clock})
    fast = serializer.data
    child = serializer.child
    assert len(fast) == len(bookings) >= 8
    assert [dict(row) for row in fast] == [serializers.Serializer.to_representation(child, row) for row in rows]
    assert {row["status"] for row in fast} >= {"confirmed", "cancelled", "pending"}
    assert any(row["series"] for row in fast) and any(row["room"] for row in fast) and any(row["cpu_cores"] for row in fast)


def test_audit_entries_read_as_drf_reads_them(bookings, alice):
    entries = [entry for booking in bookings for entry in booking_history(booking)]
    assert BookingAuditEntry.objects.count() == len(entries) > len(bookings)
    serializer = AuditEntrySerializer(entries, many=True)
    assert [dict(row) for row in serializer.data] == [serializers.Serializer.to_representation(serializer.child, e) for e in entries]
    assert any(row["actor"] is None or row["changes"] for row in serializer.data)


def test_one_plan_per_class_reads_each_serializers_own_context(bookings, later):
    """The plan is made once per class; what a field computes from the context ('now') is each serializer's."""
    row = bookings_with_relations().get(pk=bookings[2].pk)  # the room, later..later+1h
    before, during, after = (BookingSerializer(row, context={"now": at}).data["state"] for at in (later - H, later + H / 2, later + 2 * H))
    assert (before, during, after) == ("upcoming", "running", "ended")
    assert BookingSerializer._output_plan() is BookingSerializer._output_plan()
