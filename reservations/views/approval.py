"""The staff page to approve or decline a booking awaiting approval (/bookings/<id>/decide/).

Linked from the approval_requested e-mail, the admin and the booking's page. Staff only; each
decision goes through the services, and a refusal is shown on the page (409 when there is no
longer anything to decide).
"""
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from .. import services
from ..errors import BookingError, NotAllowed, NotPending
from ..models import Booking

# Bookings of the same server or room this long before or after are shown beside it.
AROUND = timedelta(hours=12)


@login_required
@require_http_methods(["GET", "POST"])
def decide(request, pk):
    booking = get_object_or_404(Booking.objects.select_related("user__profile", "server", "room", "decided_by", "series"), pk=pk)
    if not request.user.is_staff:
        return render(request, "403.html", {"message": "Only staff can approve or decline bookings."}, status=403)
    if request.method == "GET":
        return _page(request, booking)
    action, reason = request.POST.get("action", ""), request.POST.get("reason", "")
    try:
        if action == "approve":
            booking = services.approve_booking(booking, by=request.user)
        elif action == "decline":
            booking = services.decline_booking(booking, by=request.user, reason=reason)
        elif action in ("approve_series", "decline_series") and booking.series_id:
            result = services.decide_series(booking.series, by=request.user, approve=action == "approve_series", reason=reason)
            count = len(result.bookings)
            done = "Approved" if action == "approve_series" else "Declined"
            messages.success(
                request, f"{done} {count} date{'s' if count != 1 else ''} of series #{booking.series_id}; "
                f"{booking.user.get_username()} is told in one message.",
            )
            return redirect("booking-decide", pk=booking.pk)
        else:
            raise BookingError("Choose Approve or Decline.", field="action")
    except NotAllowed as error:
        return render(request, "403.html", {"message": error.message}, status=403)
    except BookingError as error:
        status = 409 if isinstance(error, NotPending) else 400
        booking.refresh_from_db()
        return _page(request, booking, error=error.message, reason=reason, status=status)
    done = "Approved" if action == "approve" else "Declined"
    messages.success(request, f"{done} booking #{booking.pk} ({booking.what}); {booking.user.get_username()} is told.")
    return redirect("booking-decide", pk=booking.pk)


def _page(request, booking, *, error=None, reason="", status=200):
    around = Booking.objects.none()
    if booking.server_id or booking.room_id:
        place = {"server_id": booking.server_id} if booking.server_id else {"room_id": booking.room_id}
        around = (
            Booking.objects.holding().overlapping(booking.start - AROUND, booking.end + AROUND).filter(**place)
            .exclude(pk=booking.pk)
            .select_related("user__profile", "server", "room")
            .prefetch_related("allocations__unit__device")
            .order_by("start", "pk")
        )
    mine = (
        Booking.objects.filter(user_id=booking.user_id, status=Booking.Status.PENDING).exclude(pk=booking.pk)
        .select_related("server", "room").prefetch_related("allocations__unit__device").order_by("start")
    )
    series_pending = list(services.pending_dates(booking.series_id)) if booking.series_id else []
    if series_pending:
        mine = mine.exclude(series_id=booking.series_id)  # listed with the series
    context = {
        "booking": booking, "around": list(around), "other_pending": list(mine), "error": error, "reason": reason,
        "series_pending": series_pending,
        "overlapping": {b.pk for b in around if b.start < booking.end and b.end > booking.start},
    }
    return render(request, "reservations/decide.html", context, status=status)
