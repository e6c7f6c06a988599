"""My bookings, and the actions on one booking (cancel, release now, extend, change time).

Each action calls the service layer. An htmx request gets back the part of the page it
replaces, with the error inline; a plain form post is redirected, or on an error gets the
page again with the error next to the booking (400/409), or 403 for someone else's booking.
"""
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from .. import services
from ..errors import BookingConflict, BookingError, NotAllowed
from ..forms import LocalDateTimeField
from ..models import Booking, BookingSeries
from ..selectors import member_bookings
from ..services.waitlist import member_entries
from ..templatetags.labres import clock, when
from .now import now_context

PAST_PER_PAGE = 20


@login_required
def my_bookings(request, *, errors=None, status=200):
    running, upcoming, past = member_bookings(request.user)
    page = Paginator(past, PAST_PER_PAGE).get_page(request.GET.get("page"))
    context = {"running": running, "upcoming": upcoming, "past": page, "errors": errors or {}}
    context["waitlist"] = member_entries(request.user)
    return render(request, "reservations/mine.html", context, status=status)


class ChangeTimeForm(forms.Form):
    start = LocalDateTimeField(label="Start", required=False)  # left out for a running booking
    end = LocalDateTimeField(label="End")


@require_POST
@login_required
def cancel(request, pk):
    return _act(request, pk, "Cancelled", lambda booking: services.cancel_booking(booking, by=request.user))


@require_POST
@login_required
def release(request, pk):
    return _act(request, pk, "Released", lambda booking: services.release_booking(booking, by=request.user))


@require_POST
@login_required
def extend(request, pk):
    duration = request.POST.get("duration", "").strip() or "1h"
    return _act(
        request, pk, "Extended", lambda booking: services.extend_booking(booking, by=request.user, duration=duration),
        says=lambda booking: f"Extended booking #{booking.pk} ({booking.what}) to {_until(booking.end)}.",
    )


def _until(moment):
    """'15:00' today, 'Tue 24 Nov 15:00' another day, with the zone: what an extension reached."""
    local = timezone.localtime(moment)
    shown = clock(moment) if local.date() == timezone.localdate() else when(moment)
    return f"{shown} {local.tzname()}"


@require_POST
@login_required
def change(request, pk):
    form = ChangeTimeForm(request.POST)

    def change_time(booking):
        if not form.is_valid():
            field, problems = next(iter(form.errors.items()))
            raise BookingError(f"{form.fields[field].label}: {' '.join(problems)} Use a date and time like 2026-11-24 14:00.", field=field)
        return services.change_booking(booking, by=request.user, start=form.cleaned_data["start"], end=form.cleaned_data["end"])


    return _act(request, pk, "Changed", change_time)


def _act(request, pk, done, action, says=None):
    booking = get_object_or_404(Booking.objects.select_related("server", "room"), pk=pk)
    try:
        booking = action(booking)
    except NotAllowed as error:
        return render(request, "403.html", {"message": error.message}, status=403)
    except BookingError as error:
        return _refused(request, booking, error)
    message = says(booking) if says else f"{done} booking #{booking.pk} ({booking.what})."
    if _htmx_target(request) == "now-panel":
        # Said next to the booking it is about (or at the top, once a release took it off the list).
        return _now_panel(request, booking, action_message=message)
    if _htmx_target(request):
        return _row(request, booking, message=message)
    messages.success(request, message)
    return redirect(_next_url(request))


def _refused(request, booking, error):
    status = 409 if isinstance(error, BookingConflict) else 400
    if _htmx_target(request) == "now-panel":
        return _now_panel(request, booking, action_error=error.message)
    if _htmx_target(request):
        return _row(request, booking, error=error.message)  # htmx swaps 200 answers only
    return my_bookings(request, errors={booking.pk: error.message}, status=status)


def _now_panel(request, booking, **said):
    """The Now page's panel after an action, saying what happened next to the booking (or at the top, when it
    left the list: released, or no longer among the next few)."""
    context = now_context(request, **said)
    listed = any(line.pk == booking.pk for line in [*context["running"], *context["upcoming"]])
    context["action_booking" if listed else "action_top"] = booking.pk
    return render(request, "reservations/_now_panel.html", context)


def _row(request, booking, *, message=None, error=None):
    booking = Booking.objects.select_related("server", "room", "series").prefetch_related("allocations__unit__device").get(pk=booking.pk)
    return render(request, "reservations/_my_row.html", {"booking": booking, "row_message": message, "row_error": error})


def _next_url(request):
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return "my-bookings"


def _htmx_target(request):
    """The id of the element an htmx request will replace, or None for a plain request."""
    return request.headers.get("HX-Target") if request.headers.get("HX-Request") else None


@login_required
@require_http_methods(["GET", "POST"])
def cancel_series(request, pk):
    """Cancel every date of a recurring booking that has not started: GET asks to confirm, POST does it."""
    series = get_object_or_404(BookingSeries.objects.select_related("user"), pk=pk)
    if request.method == "POST":
        try:
            result = services.cancel_series(series, by=request.user)
        except NotAllowed as error:
            return render(request, "403.html", {"message": error.message}, status=403)
        except BookingError as error:
            return _series_page(request, series, error=error.message, status=400)
        kept = f" Booking #{result.skipped[0].pk} is running and was left alone." if result.skipped else ""
        count = len(result.bookings)
        messages.success(request, f"Cancelled {count} date{'s' if count != 1 else ''} of series #{series.pk} ({series.describe()}).{kept}")
        return redirect("my-bookings")
    if series.user_id != request.user.pk and not request.user.is_staff:
        return render(request, "403.html", {"message": f"Series #{series.pk} belongs to {series.user.get_username()}; only they or staff can cancel it."}, status=403)
    return _series_page(request, series)


def _series_page(request, series, *, error=None, status=200):
    now = timezone.now()
    current = list(
        series.bookings.filter(status=Booking.Status.CONFIRMED, end__gt=now).select_related("server", "room")
        .prefetch_related("allocations__unit__device").order_by("start")
    )
    context = {
        "series": series, "error": error, "what": current[0].what if current else "",
        "upcoming": [booking for booking in current if booking.start > now],
        "running": [booking for booking in current if booking.start <= now],
    }
    return render(request, "reservations/series_cancel.html", context, status=status)
