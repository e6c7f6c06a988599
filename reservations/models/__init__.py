"""Servers, their GPUs, rooms, and bookings of them, one module per part of the domain.

Every bookable thing has one Unit row: a GPU, a room, or a server as a whole (resources). A
booking holds its units through Allocation rows, which carry the booking's interval and whether
it is active; the database refuses two active allocations of one unit that overlap (bookings).
Members, their groups and tokens (members), limits (fairuse), the waiting list (waitlist) and
calendar feeds and imports (calendars) each have their own module.
"""
from .audit import BookingAuditEntry
from .bookings import WITHIN_REACH, Allocation, Booking, BookingSeries
from .calendars import CalendarFeed, ExternalCalendar, FeedStamp, ImportedEvent
from .fairuse import Limit
from .members import (
    ApiToken,
    MemberGroup,
    Profile,
    SignInCounter,
    display_name_of,
    member_name,
)
from .resources import Device, Room, Server, Unit
from .waitlist import WaitlistEntry

__all__ = [
    "WITHIN_REACH", "Allocation", "ApiToken", "Booking", "BookingAuditEntry", "BookingSeries", "CalendarFeed", "Device",
    "ExternalCalendar", "FeedStamp", "ImportedEvent", "Limit", "MemberGroup", "Profile", "Room",
    "Server", "SignInCounter", "Unit", "WaitlistEntry", "display_name_of", "member_name",
]
