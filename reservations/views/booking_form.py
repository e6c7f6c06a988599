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

from .. import services
from ..calendar import booking_calendar
from ..errors import BookingConflict, BookingError, SeriesConflict
from ..forms import LOCAL_MINUTE, BookingForm
from ..models import Allocation, Booking, Device
from ..parsing import LISTING, PART, describe_target, format_device_set, format_duration, format_shares
from ..selectors import free_gpus, gpu_holders, nearest_free_start
from ..services import fairuse
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
            check = _taken(form, conflict.conflicts, request.POST, user=request.user)
        except BookingError as error:
            check = _check(form, request.POST, user=request.user)  # the box says it too, with what would help
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
    except BookingError as error:
        check = _check(form, request.POST, user=request.user)  # the availability box keeps saying what it said
        form.add_error(None if isinstance(error, SeriesConflict) else form.field_for(error), error.message)
        refused = error if isinstance(error, SeriesConflict) else None
        return _page(request, form, check, refused=refused, status=409 if refused else 400)
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


def _check(form, data, *, user):
    """The availability box: what booking the form's choice would do (services.preview_booking), as the
    booking would do it, and the chosen server's GPUs free or held in the chosen window."""
    report = _preview(form, data, user) if form.is_valid() else {"errors": [line for _, line in form.error_summary()]}
    gpus = _gpu_states(form)
    if gpus:
        report["gpus"] = gpus
    return report


def _preview(form, data, user):
    try:
        preview = services.preview_booking(user, **form.booking_kwargs())
    except BookingError as error:
        return {"errors": [error.message]}
    target, start, end = preview.target, preview.start, preview.end
    share_only = form.cleaned_data["what"] == "shares"
    if preview.conflicts:
        report = _taken(form, preview.conflicts, data, target=target, user=user)
        if preview.refusal is not None:
            report["errors"] = [preview.refusal.message]
        return report
    if preview.refusal is not None:
        return _refused(form, preview.refusal, data, target)
    report = {"free": True, "what": _describe(target, form.amounts(), share_only), "start": start, "end": end, "approval": preview.pending}
    if form.repeats:
        dates = _series_check(form, target, share_only, user)
        if "errors" in dates:
            return dates  # the repeat itself is wrong: that, not "free"
        report.update(dates)
    return report


def _gpu_states(form):
    """The chosen server's GPUs in the chosen window, for the tick boxes and the box's line:
    {"server", "free": '0-1,4-7', "held": [(index, 'Bob Marley until 14:00')], "states": {"thalys:2": text or ""}}."""
    data = getattr(form, "cleaned_data", {})
    server = form.catalog.server_named(data.get("server"))
    start, end = data.get("start"), data.get("end_at")
    if data.get("what") != "gpus" or server is None or start is None or end is None or end <= start:
        return None
    indices = [device.index for device in server.devices.all()]
    if not indices:
        return None
    holders = gpu_holders(server, start, end)
    texts = {index: f"{holder.name} {span(holder.start, holder.end)}" for index, holder in holders.items()}
    by_text = {}
    for index in sorted(texts):
        by_text.setdefault(texts[index], []).append(index)
    return {
        "server": server.name,
        "free": format_device_set(index for index in indices if index not in holders),
        "held": [(format_device_set(held), text) for text, held in by_text.items()],  # one line per holding
        "states": {f"{server.name}:{index}": texts[index] for index in sorted(texts)},
    }


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
        Allocation.objects.active().overlapping(windows[0][0], windows[-1][1]).filter(unit__in=units).values_list("start", "end")
    )
    return [(a, b) for a, b in windows if any(start < b and end > a for start, end in held)]


def _taken(form, conflicts, data, *, target=None, user=None):
    """Who holds which part and until when; the nearest start at which the same choice is free, and
    other choices free at the asked time (other GPUs of the server, other servers with the same model)."""
    target = target or services.resolve_target(**form.target)
    start = form.cleaned_data["start"]
    length = form.cleaned_data["end_at"] - start
    nearest = nearest_free_start(target.units, start, length)
    report = {"free": False, "what": _describe(target), "start": start, "end": start + length, "conflicts": conflicts}
    if conflicts == []:
        report["errors"] = [BookingConflict([]).message]
    report["wait"] = _wait(form, target, length)
    if nearest is not None:
        report.update(_use_it(form, data, nearest, length))
    if user is not None:
        report["instead"] = _instead(form, data, target, start, start + length, user)
    return report


def _wait(form, target, length):
    """"Tell me when it's free": the same request, from whenever it frees up (see reservations/waitlist.py)."""
    amounts = form.amounts()
    return {
        "server": target.server.name if target.server else "", "room": target.room.name if target.room else "",
        "gpus": len(target.devices) or ("0" if target.server and not target.units else ""),
        "devices": format_device_set(device.index for device in target.devices),
        "cpu_cores": amounts["cpu_cores"] or "", "memory_gib": amounts["memory_gib"] or "",
        "length": format_duration(length), "purpose": form.cleaned_data.get("purpose", ""),
    }


def _use_it(form, data, nearest, length):
    """The nearest free start, and a link that fills the form in again with it."""
    new_start = timezone.localtime(nearest).strftime(LOCAL_MINUTE)
    new_end = timezone.localtime(nearest + length).strftime(LOCAL_MINUTE)
    changes = {"start": new_start, "end": new_end} if data.get("end") else {"start": new_start}
    return {"nearest": nearest, "nearest_start": new_start, "nearest_end": new_end, "use_it": _book_link(form, data, changes)}


SHOWN_ALTERNATIVES = 3
TRIED_ALTERNATIVES = 4 * SHOWN_ALTERNATIVES  # candidates previewed at most (some may be refused by limits)


def _instead(form, data, target, start, end, user):
    """Up to three choices free throughout the asked window for the same number of GPUs: other GPUs of
    this server (the free ones asked for first), then other servers with GPUs of the same model; each
    checked as the booking would be (services.preview_booking), so none is refused when used."""
    count = len(target.devices)
    if not count:
        return []
    asked = [device.index for device in target.devices]
    models = set(Device.objects.filter(pk__in=[device.pk for device in target.devices]).values_list("model", flat=True))
    model = models.pop() if len(models) == 1 and "" not in models else None
    free = free_gpus(start, end, model=model) if model else free_gpus(start, end, servers=[target.server.pk])
    choices = []
    here = sorted(next((indices for server, indices in free.items() if server.pk == target.server.pk), []), key=lambda i: (i not in asked, i))
    if len(here) >= count:
        choices.append((target.server, sorted(here[:count])))
    for server, indices in free.items():
        if server.pk != target.server.pk and len(indices) >= count:
            choices.append((server, indices[:count]))
    offers = []
    for server, indices in choices[:TRIED_ALTERNATIVES]:  # each is a preview: a bounded number, whatever the lab's size
        if len(offers) == SHOWN_ALTERNATIVES:
            break
        devices = format_device_set(indices)
        try:
            preview = services.preview_booking(user, **{**form.booking_kwargs(), "server": server.name, "devices": devices})
        except BookingError:
            continue
        if not preview.free:
            continue
        if server.pk == target.server.pk:
            text = describe_target(server.name, indices, style=PART)
        else:
            text = f"{describe_target(server.name, indices, style=LISTING)} ({model})"
        changes = {"server": server.name, "devices": devices, "gpus": None}
        offers.append({"text": text, "url": _book_link(form, data, changes), "use": "use it" if count == 1 else "use them", "pending": preview.pending})
    return offers


def _refused(form, refusal, data, target):
    """A refusal by a limit or a pooled capacity; for the capacity, the start when enough is free, and a wait."""
    report = {"errors": [refusal.message]}
    free_from = getattr(refusal, "free_from", None)
    if free_from is not None:
        start = form.cleaned_data["start"]
        length = form.cleaned_data["end_at"] - start
        report.update(
            free=False, what=_describe(target, form.amounts(), form.cleaned_data["what"] == "shares"), start=start, end=start + length,
            conflicts=[], wait=_wait(form, target, length), **_use_it(form, data, free_from, length),
        )
    return report


def _describe(target, amounts=None, share_only=False):
    """'thalys GPUs 0-1', 'thalys GPU 3', 'thalys (whole server)', 'room Lab 2'; with '16 CPU cores, 64 GiB' when asked."""
    if target.room is not None:
        return describe_target(room=target.room.name)
    shares = format_shares(amounts["cpu_cores"], amounts["memory_gib"]) if amounts else ""
    indices = () if share_only else [device.index for device in target.devices]
    return describe_target(target.server.name, indices, whole=target.whole_server and not share_only, shares=shares, style=LISTING)


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
        if value is None:
            query.pop(name, None)
        else:
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
