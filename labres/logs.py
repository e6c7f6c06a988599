"""Logging filters: secrets that travel in URLs never reach the logs. And one line per booking change."""
import logging
import re

from django.db import transaction

bookings_logger = logging.getLogger("labres.bookings")

# Calendar feed addresses and Slack link confirmations carry their secret in the path.
SECRET_PATHS = re.compile(r"(/calendar/)[A-Za-z0-9_-]+(\.ics)|(/slack/link/)[^/\s\"?]+")


def redact(text):
    return SECRET_PATHS.sub(lambda m: f"{m[1]}<secret>{m[2]}" if m[1] else f"{m[3]}<secret>", text)


class RedactSecrets(logging.Filter):
    """Rewrite a record whose message holds a secret address (Django's 'Not Found: ...', runserver's request lines)."""

    def filter(self, record):
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
            request = getattr(record, "request", None)
            if request is not None:  # AdminEmailHandler and error trackers read the request itself
                record.request = None
        return True


def log_booking_change(sender, booking, event, by=None, **kwargs):
    """One INFO line on "labres.bookings" per booking change, once it is committed (a refused or rolled-back
    change logs nothing); none for changes that are news to nobody (the demo's seed, calendar imports) nor
    for each date of a series."""
    from reservations.models import member_name
    from reservations.parsing import format_span
    from reservations.signals import is_in_series, is_quiet

    if is_quiet() or is_in_series() or not bookings_logger.isEnabledFor(logging.INFO):
        return
    who = member_name(booking.user)
    actor = f" by {member_name(by)}" if by is not None and by.pk != booking.user_id else ""
    head, span = f"booking #{booking.pk} {event}{actor}: {who}", format_span(booking.start, booking.end)
    # What it holds is read after commit: its units never change, and the query then holds none of the booking's locks.
    transaction.on_commit(lambda: bookings_logger.info(f"{head}, {booking.what}, {span}"))
