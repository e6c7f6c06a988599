"""Domain errors raised by the booking services; each carries the message a member reads."""
from dataclasses import dataclass

from .parsing import PROSE, describe_target, format_device_set, format_span


class BookingError(Exception):
    """A booking request that cannot be done as asked. `field` names the input at fault, if one is."""

    code = "invalid"

    def __init__(self, message, *, field=None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotAllowed(BookingError):
    """The caller may not change this booking (it is someone else's)."""

    code = "forbidden"


class NotPending(BookingError):
    """An approval decision on a booking that is not awaiting one (approved, declined, expired, cancelled)."""

    code = "not_pending"


class WrongState(BookingError):
    """The booking (or series) is not in a state that allows this: cancelled, ended, running, not started."""

    code = "wrong_state"


class Busy(BookingError):
    """The units stayed locked by other writers for too long; trying again will likely work."""

    code = "busy"


@dataclass(frozen=True)
class Conflict:
    """One existing booking that holds some of the asked units during the asked time."""

    booking: object  # reservations.models.Booking, with user, server and room loaded
    units: tuple  # the asked units it holds, with their devices loaded

    @property
    def message(self):
        from .models import member_name

        booking = self.booking
        who = member_name(booking.user)
        purpose = f" ({booking.purpose})" if booking.purpose else ""
        subject, verb = _describe_units(booking, self.units)
        return f"{subject} {verb} booked by {who} {format_span(booking.start, booking.end, sentence=True)}{purpose}"

    def as_dict(self):
        """The conflict as data, for the API and the pages."""
        booking = self.booking
        return {
            "booking": booking.pk,
            "user": booking.user.get_username(),
            "server": booking.server.name if booking.server_id else None,
            "devices": format_device_set(u.device.index for u in self.units if u.device_id) or None,
            "whole_server": booking.whole_server,
            "room": booking.room.name if booking.room_id else None,
            "start": booking.start.isoformat(),
            "end": booking.end.isoformat(),
            "purpose": booking.purpose,
            "message": self.message,
        }


class BookingConflict(BookingError):
    """The asked units are already held during the asked time."""

    code = "conflict"

    def __init__(self, conflicts):
        self.conflicts = list(conflicts)
        if self.conflicts:
            message = "; ".join(conflict.message for conflict in self.conflicts) + "."
        else:
            message = "Someone else booked these units at the same moment; please try again."
        super().__init__(message)


def _describe_units(booking, units):
    """The subject of a conflict's sentence: 'GPUs 0-1 on thalys', 'Server thalys (whole server)', 'Room Lab 2'; and its verb."""
    if booking.room_id:
        room = describe_target(room=booking.room.name)
        return room[0].upper() + room[1:], "is"
    if booking.whole_server:
        return f"Server {describe_target(booking.server.name, whole=True)}", "is"
    indices = [unit.device.index for unit in units if unit.device_id]
    return describe_target(booking.server.name, indices, style=PROSE), "is" if len(indices) == 1 else "are"


# --- recurring bookings -----------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """One occurrence of a series that cannot be booked, and why (the BookingError create_booking raised)."""

    start: object
    end: object
    error: BookingError

    @property
    def reason(self):
        return self.error.message

    def as_dict(self):
        """The refusal as data, for the API and the pages; times as they are (the API writes them in UTC)."""
        data = {"start": self.start.isoformat(), "end": self.end.isoformat(), "code": self.error.code, "message": self.reason}
        if isinstance(self.error, BookingConflict):
            data["conflicts"] = [conflict.as_dict() for conflict in self.error.conflicts]
        return data


class SeriesConflict(BookingError):
    """Some occurrences of a recurring booking cannot be booked: `refused` lists each with its reason.

    Nothing was written; the member may book the others (on_conflict="skip") or give up.
    """

    code = "series_conflict"

    def __init__(self, refused, *, total):
        self.refused = list(refused)
        self.total = total
        self.bookable = total - len(self.refused)
        first = self.refused[0]
        if self.bookable == 0:
            head = f"None of the {total} dates can be booked"
        else:
            head = f"{len(self.refused)} of the {total} dates cannot be booked"
        more = f" (and {len(self.refused) - 1} more)" if len(self.refused) > 1 else ""
        super().__init__(f"{head}: {format_span(first.start, first.end, joiner=' to ')}: {first.reason}{more}", field="repeat")
