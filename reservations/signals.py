"""Signals the booking services send inside their transaction, so that what reacts to a change
(the notification outbox) is written atomically with it.

Reservations only announces; the apps that listen (notifications, the booking log) decide what a
change is worth. Two contexts tell them more about the changes made inside a block: quiet() (news
to nobody) and in_series() (one series_* signal tells of them all).
"""
import threading
from contextlib import contextmanager

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

# Sent by the waitlist with user= when a member joins a line, to ask how they will hear of their
# turn: a receiver (the notifications app) returns (channel names, words), the words saying how
# ("by e-mail to a@lab.org") or, with no channel, why not. Reservations knows no channels.
waitlist_told = Signal()

_context = threading.local()


@contextmanager
def _within(flag):
    before = getattr(_context, flag, False)
    setattr(_context, flag, True)
    try:
        yield
    finally:
        setattr(_context, flag, before)


def quiet():
    """Changes made inside this block (this thread) are news to nobody: loading demo data, importing a
    calendar's events. The signals are still sent (the waitlist and the feeds must still follow)."""
    return _within("quiet")


def is_quiet():
    return getattr(_context, "quiet", False)


def in_series():
    """The per-date changes a series makes inside this block (this thread): the one series_* signal sent
    after them tells of them all."""
    return _within("series")


def is_in_series():
    return getattr(_context, "series", False)
