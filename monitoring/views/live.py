"""The live GPU page, which refreshes itself, and each GPU's history chart."""
import functools
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.text import slugify

from reservations.api.times import utc_iso
from reservations.models import Allocation, Device, Server, display_name_of
from reservations.selectors import Holding
from reservations.templatetags.labres import mib, when

from ..history import PERIODS, gpu_history
from ..live import HostState, Load, Match, live_hosts

DEFAULT_PERIOD = "day"
# htmx stops polling on this status (and swaps in what came with it).
HTMX_STOP_POLLING = 286
# The distance between two points of each resolution, in seconds ("raw": the sampling interval).
ROLLUP_STEP_SECONDS = {"minute": 60, "hour": 3600}
LOAD_TEXT = {Load.HIGH: "high load"}
_slug = functools.lru_cache(maxsize=None)(slugify)  # a handful of load and match names


@login_required
def gpus(request):
    """Every monitored server's GPUs: load, memory, temperature, power, processes and the booking beside them."""
    context, status = _live_context(request)
    return render(request, "monitoring/gpus.html", context, status=status)


def panel(request):
    """The same cards without the page around them, for htmx polling."""
    if not request.user.is_authenticated:
        if request.headers.get("HX-Request"):
            # A poll after the session ended must not swap the sign-in page into the panel.
            return render(request, "monitoring/_signed_out.html", status=HTMX_STOP_POLLING)
        return redirect_to_login(request.get_full_path())
    context, status = _live_context(request)
    return render(request, "monitoring/_gpus_panel.html", context, status=status)


def _live_context(request):
    """The page's context and status: 404 with a message for a server that is not monitored."""
    moment = timezone.now()
    name = request.GET.get("server") or None
    # No server's name holds a NUL, and PostgreSQL refuses to compare one: answer "no such server".
    hosts = [] if name and "\x00" in name else live_hosts(moment, server=name)
    when_cached = functools.lru_cache(maxsize=None)(when)  # many GPUs show the same few booking ends
    urls = {"history": url_maker("gpu-history"), "booking": url_maker("booking-detail")}
    for host in hosts:
        host.seen_ago = ago(moment - host.last_seen_at) if host.last_seen_at else ""
        host.rows = mark_safe("".join(gpu_row(host, gpu, request.user, when_cached, urls) for gpu in host.gpus))
    context = {
        "hosts": hosts,
        "moment": moment,
        "server": name,
        "servers": [host.name for host in hosts] if name is None else _monitored_names(),
        "counts": _counts(hosts),
        "interval": settings.TELEMETRY_INTERVAL_SECONDS,
        "problem": "",
    }
    if name is not None and not hosts:
        context["problem"] = f"No monitored server is named “{name[:64].replace(chr(0), '')}”."
        return context, 404
    return context, 200


def _monitored_names():
    return list(Server.objects.filter(active=True, monitored=True).order_by("name").values_list("name", flat=True))


def ago(delta):
    """'12 s ago', '3 min ago', '5 h ago', '2 days ago'."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def url_maker(name):
    """pk -> reverse(name, args=[pk]) at the cost of one reverse (a reverse costs ~0.1 ms; a page has hundreds)."""
    marker = 2_147_483_647
    before, after = reverse(name, args=[marker]).split(str(marker))
    return lambda pk: f"{before}{pk}{after}"


def gpu_row(host, gpu, viewer, when, urls):
    """One GPU's table row. Built here, not in a template: 400 GPUs, polled every interval,
    render several times faster (as the Now page's cards do)."""
    cells = [
        f'<th scope="row" class="gpu-name"><a href="{urls["history"](gpu.device_id)}">'
        f'{escape(host.name)}:{gpu.index}<span class="visually-hidden"> history</span></a>'
        f"<small>{escape(gpu.model)}</small></th>",
        f'<td class="load-cell"><span class="load load-{_slug(gpu.load)}">{LOAD_TEXT.get(gpu.load, gpu.load)}</span></td>',
    ]
    if gpu.error:
        cells.append(f'<td colspan="5" class="gpu-error wide">NVML could not read this GPU: {escape(gpu.error)}</td>')
    elif gpu.taken_at is None:
        missing = "reading of this GPU" if host.state == HostState.OK else "fresh reading"
        cells.append(f'<td colspan="5" class="muted small wide">no {missing}</td>')
    else:
        utilization = _bar(gpu.gpu_util, 100, f"{gpu.gpu_util}%")
        memory = _bar(gpu.memory_used_mib, gpu.memory_total_mib, _memory_text(gpu.memory_used_mib, gpu.memory_total_mib))
        temperature = "—" if gpu.temperature_c is None else f"{gpu.temperature_c} °C"
        power = _bar(gpu.power_w, gpu.power_limit_w, _power_text(gpu.power_w, gpu.power_limit_w))
        cells += [
            f'<td data-label="Utilization">{utilization}</td>',
            f'<td data-label="Memory">{memory}</td>',
            f'<td class="num" data-label="Temp.">{temperature}</td>',
            f'<td data-label="Power">{power}</td>',
            f'<td class="processes wide" data-label="Processes">{_processes(gpu)}</td>',
        ]
    holding = _holding(gpu.holding, viewer, when, urls["booking"])
    cells.append(f'<td class="holding wide"><span class="match match-{_slug(gpu.match)}">{gpu.match}</span>{holding}</td>')
    row_class = "gpu-row unbooked" if gpu.match == Match.UNBOOKED else "gpu-row"
    return f'<tr class="{row_class}">{"".join(cells)}</tr>\n'


def _bar(value, whole, text):
    """The value as text, with a bar beside it that only repeats it (hidden from screen readers)."""
    if value is None:
        return '<span class="muted">—</span>'
    percent = _percent(value, whole)
    bar = ""
    if percent is not None:
        high = " high" if percent >= 90 else ""
        bar = f'<span class="bar" aria-hidden="true"><span class="fill{high}" style="width: {percent}%"></span></span>'
    return f'<div class="meter">{bar}<span class="value">{escape(text)}</span></div>'


def _processes(gpu):
    if gpu.processes is None:
        return f'<span class="muted small">{escape(gpu.processes_note or "Processes not visible.")}</span>'
    if not gpu.processes:
        return '<ul class="plain"><li class="muted small">none</li></ul>'
    items = []
    for process in gpu.processes:
        member = f"<span>{escape(process.member)}</span>" if process.member else '<em class="muted">unknown user</em>'
        opening, flag = ("<li>", "") if process.booked else ('<li class="intruder">', ' <span class="tag-small">not booked</span>')
        items.append(
            f'{opening}<span class="pid">{process.pid}</span> '
            f'<span class="prog">{escape(process.name or "")}</span> '
            f'<span class="unix">{escape(process.unix_user or "?")}</span> {member} '
            f'<span class="num">{mib(process.used_memory_mib)}</span>{flag}</li>'
        )
    return f'<ul class="plain">{"".join(items)}</ul>'


def _holding(holding, viewer, when, booking_url):
    if holding is None:
        return ""
    who = "You" if holding.user_id == viewer.pk else escape(holding.name)
    purpose = f" — {escape(holding.purpose)}" if holding.purpose else ""
    return (
        f' <a href="{booking_url(holding.booking_id)}">{who}</a>'
        f"<small>until {when(holding.end)}{purpose}</small>"
    )


def _memory_text(used, total):
    """'19.4 / 80.0 GiB', '420 MiB / 80.0 GiB', or just what is used when the total is unknown."""
    if used is None:
        return ""
    if not total:
        return mib(used)
    if used >= 1024 and total >= 1024:
        return f"{used / 1024:.1f} / {mib(total)}"
    return f"{mib(used)} / {mib(total)}"


def _power_text(watts, limit):
    """'309 / 400 W', or '309 W' without a limit."""
    if watts is None:
        return ""
    return f"{watts:.0f} / {limit:.0f} W" if limit else f"{watts:.0f} W"


def _percent(value, whole):
    if not whole:
        return None
    return max(0, min(100, round(100 * value / whole)))


def _counts(hosts):
    """How many GPUs are in each state that matters at a glance."""
    gpus = [gpu for host in hosts for gpu in host.gpus]
    return {
        "gpus": len(gpus),
        "busy": sum(gpu.load in ("active", "high") for gpu in gpus),
        "unbooked": sum(gpu.match == Match.UNBOOKED for gpu in gpus),
        "idle_booked": sum(gpu.match == Match.BOOKED_IDLE for gpu in gpus),
    }


@login_required
def history(request, device_id):
    """One GPU over the last hour, day, week or month (?period=), as a chart, a summary and its bookings."""
    device = Device.objects.select_related("server").filter(pk=device_id).first()
    if device is None:
        return render(request, "monitoring/gpu_history.html", {"missing": device_id}, status=404)
    period, problem = _read_period(request.GET.get("period"))
    end = timezone.now()
    start = end - PERIODS[period]
    resolution, points = gpu_history(device.pk, start, end, now=end)
    bookings = bookings_on(device, start, end)
    context = {
        "device": device,
        "period": period,
        "periods": list(PERIODS),
        "problem": problem,
        "resolution": resolution,
        "summary": summarize(points, device.memory_mib),
        "bookings": bookings,
        # For the chart's shading of booked time.
        "booked_spans": [{"start": utc_iso(b.start), "end": utc_iso(b.end), "name": b.name} for b in bookings],
        "start": start,
        "end": end,
    }
    return render(request, "monitoring/gpu_history.html", context)


def _read_period(value):
    """(period, problem): an unknown period falls back to the default, with a note."""
    if not value:
        return DEFAULT_PERIOD, ""
    if value not in PERIODS:
        return DEFAULT_PERIOD, f"There is no “{value[:40]}” period; showing the last {DEFAULT_PERIOD}. Use {_period_names()}."
    return value, ""


def _period_names():
    names = list(PERIODS)
    return ", ".join(names[:-1]) + " or " + names[-1]


@dataclass
class Summary:
    """A GPU's use over a period, for the table beside the chart."""

    samples: int
    gpu_util_mean: float | None
    gpu_util_peak: int | None
    memory_peak_mib: int | None
    memory_peak_percent: float | None
    temperature_peak_c: int | None
    power_mean_w: float | None


def summarize(points, memory_total_mib=None):
    """Mean and peak utilization, peak memory and temperature, mean power over history points."""
    samples = sum(point.samples for point in points)

    def peak(values):
        values = [value for value in values if value is not None]
        return max(values) if values else None

    def mean(name):
        weighted = [(getattr(point, name), point.samples) for point in points if getattr(point, name) is not None]
        weight = sum(n for _, n in weighted)
        return sum(value * n for value, n in weighted) / weight if weight else None

    memory_peak = peak(point.memory_peak_mib for point in points)
    return Summary(
        samples=samples,
        gpu_util_mean=mean("gpu_util"),
        gpu_util_peak=peak(point.gpu_util_max for point in points),
        memory_peak_mib=memory_peak,
        memory_peak_percent=100 * memory_peak / memory_total_mib if memory_peak is not None and memory_total_mib else None,
        temperature_peak_c=peak(point.temperature_c for point in points),
        power_mean_w=mean("power_w"),
    )


def bookings_on(device, start, end):
    """The bookings that held `device` at some time in [start, end), first first, from one query."""
    rows = (
        Allocation.objects.active().overlapping(start, end).filter(unit__device=device)
        .order_by("start")
        .values_list(
            "booking_id", "booking__user_id", "booking__user__profile__display_name", "booking__user__first_name",
            "booking__user__last_name", "booking__user__username", "start", "end", "booking__purpose",
        )
    )
    return [
        Holding(booking_id, user_id, display_name_of(display, first, last, username), start, end, purpose, username)
        for booking_id, user_id, display, first, last, username, start, end, purpose in rows
    ]


def history_data(request, device_id):
    """JSON for the history chart: {device, period, resolution, step_seconds, start, end, points}."""
    if not request.user.is_authenticated:
        return _error(401, "unauthenticated", "Sign in to see a GPU's history.")
    device = Device.objects.select_related("server").filter(pk=device_id).first()
    if device is None:
        return _error(404, "not_found", f"There is no GPU with id {device_id}.")
    period = request.GET.get("period") or DEFAULT_PERIOD
    if period not in PERIODS:
        message = f"There is no “{period[:40]}” period. Use {_period_names()}."
        return _error(400, "invalid", message, fields={"period": [message]})
    end = timezone.now()
    start = end - PERIODS[period]
    resolution, points = gpu_history(device.pk, start, end, now=end)
    return JsonResponse({
        "device": {
            "id": device.pk, "server": device.server.name, "index": device.index, "name": str(device),
            "model": device.model, "uuid": device.uuid, "memory_total_mib": device.memory_mib,
        },
        "period": period,
        "resolution": resolution,
        "step_seconds": ROLLUP_STEP_SECONDS.get(resolution, settings.TELEMETRY_INTERVAL_SECONDS),
        "start": utc_iso(start),
        "end": utc_iso(end),
        "points": [point.as_dict() for point in points],
    })


def _error(status, code, message, *, fields=None):
    """The API's error shape: {"error": {"code", "message", "fields"?}}."""
    body = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return JsonResponse({"error": body}, status=status)


urlpatterns = [
    path("gpus/", gpus, name="gpus"),
    path("gpus/panel/", panel, name="gpus-panel"),
    path("gpus/<int:device_id>/history/", history, name="gpu-history"),
    path("gpus/<int:device_id>/history.json", history_data, name="gpu-history-data"),
]
