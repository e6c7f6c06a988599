"""Signals the booking services send inside their transaction, so that what reacts to a change
(the notification outbox) is written atomically with it."""
from django.dispatch import Signal

# Sent with booking=, event= ("created", "changed", "cancelled", "released"), by= (the user who
# acted) and, for "changed", before= (the (start, end) the booking had).
booking_changed = Signal()

# Sent by the waitlist (reservations.services.waitlist) inside its transaction with entry= and event=
# ("offered": an offer is open; "lapsed": the entry ended unserved, with why=).
waitlist_changed = Signal()

# Sent with series=, event= ("series_created", "series_cancelled"), by=, bookings= (booked or
# cancelled, soonest first) and skipped= (Refusals, or the running bookings left alone).
series_changed = Signal()
