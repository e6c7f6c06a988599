"""What people hear about: each event, who it goes to, and whether members get it unless they opt out."""
from dataclasses import dataclass

from django.db import models


class Event(models.TextChoices):
    CREATED = "created", "booking created"
    CHANGED = "changed", "booking changed"
    CANCELLED = "cancelled", "booking cancelled"
    RELEASED = "released", "booking released early"
    STARTS_SOON = "starts_soon", "booking starts soon"
    ENDS_SOON = "ends_soon", "booking ends soon"
    ENDED = "ended", "booking ended"
    FOLLOWED = "followed", "someone booked right after you"
    IDLE_BOOKING = "idle_booking", "idle booking"
    UNBOOKED_USE = "unbooked_use", "unbooked use"
    HOST_STALE = "host_stale", "host stale"
    WAITLIST_OFFER = "waitlist_offer", "waitlist: your turn"
    WAITLIST_LAPSED = "waitlist_lapsed", "waitlist: entry lapsed"
    SERIES_CREATED = "series_created", "recurring booking created"
    SERIES_CANCELLED = "series_cancelled", "recurring booking cancelled"
    APPROVAL_REQUESTED = "approval_requested", "booking awaits approval"
    APPROVED = "approved", "booking approved"
    DECLINED = "declined", "booking declined"
    EXPIRED = "expired", "booking expired unapproved"


@dataclass(frozen=True)
class EventSpec:
    name: str
    label: str
    help: str
    on_by_default: bool  # for the member concerned, on their default channel
    to_resources: bool = False  # a server's or room's destinations hear it unless they choose events
    to_lab: bool = False  # lab-wide destinations hear it unless they choose events
    to_staff: bool = False  # staff members hear it too, on their own channels
    attach_ics: bool = False  # e-mails carry the booking as an .ics
    to_owner: bool = True  # the booking's (or alert's) member hears it


EVENTS = {
    spec.name: spec
    for spec in [
        EventSpec(Event.CREATED, Event.CREATED.label, "A booking of yours was made (by you or by staff).", True, to_resources=True, attach_ics=True),
        EventSpec(Event.CHANGED, Event.CHANGED.label, "A booking of yours moved or was extended.", True, to_resources=True, attach_ics=True),
        EventSpec(Event.CANCELLED, Event.CANCELLED.label, "A booking of yours was cancelled.", True, to_resources=True, attach_ics=True),
        EventSpec(Event.RELEASED, Event.RELEASED.label, "A booking of yours was ended before its time.", True, to_resources=True),
        EventSpec(Event.STARTS_SOON, Event.STARTS_SOON.label, "A reminder shortly before your booking starts.", True),
        EventSpec(Event.ENDS_SOON, Event.ENDS_SOON.label, "A warning shortly before your booking ends, to extend or release it.", True),
        EventSpec(Event.ENDED, Event.ENDED.label, "Your booking has run its time.", False),
        EventSpec(Event.FOLLOWED, Event.FOLLOWED.label, "Someone booked what you hold, starting when your booking ends.", True),
        EventSpec(Event.IDLE_BOOKING, Event.IDLE_BOOKING.label, "Your booked GPUs have stayed idle.", True),
        EventSpec(Event.UNBOOKED_USE, Event.UNBOOKED_USE.label, "Your processes run on a GPU you have not booked.", True, to_lab=True, to_staff=True),
        EventSpec(Event.HOST_STALE, Event.HOST_STALE.label, "A GPU host stopped reporting (staff).", True, to_lab=True, to_staff=True),
        EventSpec(Event.WAITLIST_OFFER, Event.WAITLIST_OFFER.label, "What you wait for is free: claim it with one click before the offer runs out.", True),
        EventSpec(Event.WAITLIST_LAPSED, Event.WAITLIST_LAPSED.label, "Your waitlist entry ended without a booking.", True),
        # A series tells once for all its dates (its bookings' own created/cancelled messages are skipped: receivers.py).
        EventSpec(Event.SERIES_CREATED, Event.SERIES_CREATED.label, "A recurring booking of yours was made: its dates, and those skipped.", True, to_resources=True),
        EventSpec(Event.SERIES_CANCELLED, Event.SERIES_CANCELLED.label, "The rest of a recurring booking of yours was cancelled.", True, to_resources=True),
        # Approval: staff (and the resource's channels) are asked; the member hears the outcome.
        EventSpec(
            Event.APPROVAL_REQUESTED, Event.APPROVAL_REQUESTED.label, "A member's booking awaits approval (staff).", True,
            to_resources=True, to_staff=True, to_owner=False,
        ),
        EventSpec(Event.APPROVED, Event.APPROVED.label, "Staff approved a booking of yours.", True, attach_ics=True),
        EventSpec(Event.DECLINED, Event.DECLINED.label, "Staff declined a booking of yours.", True, attach_ics=True),
        EventSpec(Event.EXPIRED, Event.EXPIRED.label, "A booking of yours was not approved before its start.", True, attach_ics=True),
    ]
}

# Events a member may choose channels for on their profile (staff also see host_stale and approval_requested).
MEMBER_EVENTS = [name for name in EVENTS if name not in (Event.HOST_STALE, Event.APPROVAL_REQUESTED)]
STAFF_EVENTS = [Event.HOST_STALE, Event.APPROVAL_REQUESTED]
