"""The booking form (/book/) with its live availability check, and a booking's own page and .ics."""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from monitoring.usage import stored_or_live_usage

from .. import capacity, fairuse, services
from ..calendar import booking_calendar
from ..errors import BookingConflict, BookingError, SeriesConflict
from ..forms import LOCAL_MINUTE, BookingForm
from ..models import Allocation, Booking
from ..parsing import format_device_set, format_duration
from ..selectors import nearest_free_start
from ..templatetags.labres import span


@login_required
@require_http_methods(["GET", "POST"])
def book(request):
    """The form; a link may prefill it (?server=thalys&devices=0-1&start=2025-11-23T14:00&end=...)."""
    if request.method == "POST":
        return _submit(request)
    form, data, notes = BookingForm.from_query(request.GET)
    check = None
    if notes:
        check = {"errors": notes}
    elif {"what", "gpus", "devices", "room", "cpu_cores", "memory_gib"} & set(request.GET):  # the link says what; a server alone is not a choice yet
        check = _check(BookingForm(data, catalog=form.catalog), data, user=request.user)
    return _page(request, form, check)


def _submit(request):
    form = BookingForm(request.POST)
    check = None
    if form.is_valid() and form.repeats:
        return _submit_series(request, form)
    if form.is_valid():
        try:
            booking = services.create_booking(request.user, source=Booking.Source.WEB, **form.booking_kwargs())
        except BookingConflict as conflict:
            form.add_error(None, "The time you chose overlaps other bookings; see Availability below.")
            check = _taken(form, conflict.conflicts, request.POST)
        except BookingError as error:
            form.add_error(form.field_for(error), error.message)
        else:
            waiting = " It awaits approval by staff; you will be told when they decide." if booking.pending else ""
            messages.success(request, f"Booked {booking.what}, {span(booking.start, booking.end)}.{waiting}")
            response = redirect("booking-detail", pk=booking.pk)
            response.status_code = 303  # see the new booking; a reload does not post again
            return response
    return _page(request, form, check)


def _submit_series(request, form):
    """A recurring booking: all dates or, if some are taken and the member has not chosen to skip
    them, the page again listing each refused date with "Book the N others" and "Cancel"."""
    on_conflict = "skip" if request.POST.get("on_conflict") == "skip" else "ask"
    try:
        result = services.create_series(request.user, source=Booking.Source.WEB, on_conflict=on_conflict, **form.series_kwargs())
    except SeriesConflict as refused:
        form.add_error(None, refused.message)
        return _page(request, form, None, refused=refused, status=409)
    except BookingError as error:
        form.add_error(form.field_for(error), error.message)
        return _page(request, form, None, status=400)
    skipped = f"; skipped {len(result.skipped)} taken date{'s' if len(result.skipped) != 1 else ''}" if result.skipped else ""
    count = len(result.bookings)
    messages.success(request, f"Booked {result.bookings[0].what} {result.series.describe()}: {count} date{'s' if count != 1 else ''}{skipped}.")
    response = redirect("my-bookings")
    response.status_code = 303
    return response


def _page(request, form, check, *, refused=None, status=200):
    """The form page, with the fair-use limits that hold for this member (and whose they are)."""
    limits = [rule.says() for rule in fairuse.effective_limits(request.user)]
    context = {"form": form, "check": check, "limits": limits, "refused": refused}
    return render(request, "reservations/book.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def check(request):
    """Whether the form's choice is free right now; the partial the form's status box shows."""
    data = request.POST if request.method == "POST" else request.GET
    return render(request, "reservations/_book_check.html", {"check": _check(BookingForm(data), data, user=request.user)})


def _check(form, data, *, user=None):
    if not form.is_valid():
        return {"errors": [line for _, line in form.error_summary()]}
    try:
        target = services.resolve_target(**form.target)
    except BookingError as error:
        return {"errors": [error.message]}
    start, end = form.cleaned_data["start"], form.cleaned_data["end_at"]
    amounts = form.amounts()
    share_only = form.cleaned_data["what"] == "shares"
    conflicts = [] if share_only else services.find_conflicts(target.units, start, end)
    if conflicts:
        return _taken(form, conflicts, data, target=target)
    whole = target.whole_server and not share_only  # takes all of the server's pools
    if target.server is not None and (whole or any(amounts.values())):
        try:  # a look without the lock: the booking itself checks again under it
            capacity.check(target.server, **amounts, whole=whole, start=start, end=end)
        except BookingError as error:
            return {"errors": [error.message]}
    place = target.server or target.room
    report = {
        "free": True, "what": _describe(target, amounts, share_only), "start": start, "end": end,
        "approval": bool(place and place.requires_approval),
    }
    if form.repeats and user is not None:
        dates = _series_check(form, target, share_only, user)
        if "errors" in dates:
            return dates  # the repeat itself is wrong: that, not "free"
        report.update(dates)
    return report


SHOWN_TAKEN_DATES = 10


def _series_check(form, target, share_only, user):
    """For a repeat: how many dates it gives and which are taken already (the booking asks to skip them)."""
    data = form.cleaned_data
    try:
        plan = services.plan_series(user, start=data["start"], end=data["end_at"], repeat=data["repeat"], until=data["until"])
    except BookingError as error:
        return {"errors": [error.message]}
    windows = plan.windows(data["end_at"] - data["start"])
    taken = [] if share_only else taken_windows(target.units, windows)
    return {
        "dates": len(windows), "taken_count": len(taken),
        "taken_dates": [(a, b, services.find_conflicts(target.units, a, b)) for a, b in taken[:SHOWN_TAKEN_DATES]],
    }


def taken_windows(units, windows):
    """The windows (start, end) in which any of `units` is held: one query for all of them."""
    if not windows or not units:
        return []
    held = list(
        Allocation.objects.filter(unit__in=units, active=True, start__lt=windows[-1][1], end__gt=windows[0][0]).values_list("start", "end")
    )
    return [(a, b) for a, b in windows if any(start < b and end > a for start, end in held)]


def _taken(form, conflicts, data, *, target=None):
    """Who holds which part and until when, and the nearest start at which the same choice is free."""
    target = target or services.resolve_target(**form.target)
    start = form.cleaned_data["start"]
    length = form.cleaned_data["end_at"] - start
    nearest = nearest_free_start(target.units, start, length)
    report = {"free": False, "what": _describe(target), "start": start, "end": start + length, "conflicts": conflicts}
    if conflicts == []:
        report["errors"] = [BookingConflict([]).message]
    # "Tell me when it's free": the same request, from whenever it frees up (see reservations/waitlist.py).
    report["wait"] = {
        "server": target.server.name if target.server else "", "room": target.room.name if target.room else "",
        "gpus": len(target.devices) or "", "length": format_duration(length), "purpose": form.cleaned_data.get("purpose", ""),
    }
    if nearest is not None:
        new_start = timezone.localtime(nearest).strftime(LOCAL_MINUTE)
        new_end = timezone.localtime(nearest + length).strftime(LOCAL_MINUTE)
        changes = {"start": new_start, "end": new_end} if data.get("end") else {"start": new_start}
        report.update(nearest=nearest, nearest_start=new_start, nearest_end=new_end, use_it=_book_link(form, data, changes))
    return report


def _describe(target, amounts=None, share_only=False):
    """'thalys GPUs 0-1', 'thalys GPU 3', 'thalys (whole server)', 'room Lab 2'; with '16 CPU cores, 64 GiB' when asked."""
    shares = ", ".join(
        text for text in (
            f"{amounts['cpu_cores']} CPU core{'s' if amounts['cpu_cores'] != 1 else ''}" if amounts and amounts["cpu_cores"] else "",
            f"{amounts['memory_gib']} GiB" if amounts and amounts["memory_gib"] else "",
        ) if text
    )
    if share_only:
        return f"{target.server.name}: {shares}"
    if shares:
        return f"{_describe(target)} + {shares}"
    if target.room is not None:
        return f"room {target.room.name}"
    if target.whole_server:
        return f"{target.server.name} (whole server)"
    indices = [device.index for device in target.devices]
    noun = "GPU" if len(indices) == 1 else "GPUs"
    return f"{target.server.name} {noun} {format_device_set(indices)}"


def _book_link(form, data, changes):
    """/book/?… with the form's values and `changes`: a link that fills the form in again."""
    query = QueryDict(mutable=True)
    unused = {"server", "gpus", "devices"} if form.cleaned_data["what"] == "room" else {"room"}
    for name in (name for name in form.fields if name not in unused):
        values = data.getlist(name) if hasattr(data, "getlist") else data.get(name, [])
        values = values if isinstance(values, list) else [values]
        if any(values):
            query.setlist(name, values)
    for name, value in changes.items():
        query[name] = value
    return f"{reverse('book')}?{query.urlencode()}"


# --- a booking's page and .ics -------------------------------------------------------------


def _booking(pk):
    """Any member may see any booking: the whole lab sees them on the timeline."""
    bookings = Booking.objects.select_related("user__profile", "server", "room").prefetch_related("allocations__unit__device")
    return get_object_or_404(bookings, pk=pk)


@login_required
def detail(request, pk):
    booking = _booking(pk)
    state = booking.state()
    context = {
        "booking": booking,
        "state": state,
        "can_change": booking.user_id == request.user.pk or request.user.is_staff,
        "location": booking.room.location if booking.room_id else booking.server.location,
    }
    if booking.server_id and booking.server.monitored and state in ("running", "ended", "released"):
        # What the GPUs really did: settled once the booking ended, computed live while it runs.
        context["usage"] = stored_or_live_usage(booking)
        context["alerts"] = list(booking.alerts.order_by("-opened_at"))
        context["active_percent"] = settings.GPU_ACTIVE_PERCENT
    return render(request, "reservations/booking_detail.html", context)


@login_required
def ics(request, pk):
    booking = _booking(pk)
    body = booking_calendar(booking, base_url=request.build_absolute_uri("/"), viewer_id=request.user.pk)
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="booking-{booking.pk}.ics"'
    return response
