"""Bookings as iCalendar (.ics) events, for 'Add to calendar' and the calendar feeds."""
from datetime import UTC

from urllib.parse import urlsplit

from django.urls import reverse
from django.utils import timezone
from icalendar import Calendar, Event

from .models import Booking

PRODID = "-//labres//labres//EN"


def build_calendar(bookings, base_url):
    """A VCALENDAR with one VEVENT per booking, as bytes; links point at `base_url` (https://labres.lab.org).

    Pass bookings with server, room and (for GPU bookings) allocations__unit__device loaded.
    """
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    base_url = base_url.rstrip("/")
    host = urlsplit(base_url).hostname or "localhost"
    stamp = timezone.now().astimezone(UTC)
    for booking in bookings:
        calendar.add_component(_event(booking, base_url, host, stamp))
    return calendar.to_ical()


def _event(booking, base_url, host, stamp):
    event = Event()
    event.add("uid", f"booking-{booking.pk}@{host}")
    event.add("dtstamp", stamp)
    event.add("dtstart", booking.start.astimezone(UTC))
    event.add("dtend", booking.end.astimezone(UTC))
    event.add("created", booking.created_at.astimezone(UTC))
    event.add("last-modified", booking.updated_at.astimezone(UTC))
    event.add("summary", summary(booking))
    event.add("description", base_url + reverse("booking-detail", args=[booking.pk]))
    location = booking.room.location if booking.room_id else booking.server.location
    if location:
        event.add("location", location)
    event.add("status", "CANCELLED" if booking.status == Booking.Status.CANCELLED else "CONFIRMED")
    event.add("sequence", 0)
    return event


def summary(booking):
    """'GPU thalys:0-1 — training resnet', 'Server thalys (whole)', 'Room Lab 2 — reading group'."""
    if booking.room_id:
        what = f"Room {booking.room.name}"
    elif booking.whole_server:
        what = f"Server {booking.server.name} (whole)"
    else:
        what = f"GPU {booking.what}"
    return f"{what} — {booking.purpose}" if booking.purpose else what
