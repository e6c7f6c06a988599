"""The usage analytics page (/usage/) and its CSV (/usage.csv): booked against used GPU-hours over a period.

Members see the whole lab's figures: seeing who books and who uses is the point. The period is
whole days in the member's time zone; the figures come from monitoring.analytics.
"""
import csv
import unicodedata
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from reservations.parsing import EARLIEST, LATEST

from ..analytics import (
    DAY_NAMES,
    HOURS_PER_WEEK,
    IDLE_MIN_BOOKED_HOURS,
    LONGEST_PERIOD_DAYS,
    NO_GROUP,
    Period,
    cached_usage_report,
    preset_periods,
)

CSV_KINDS = ("member", "group", "server", "booking")
# The days a period may cover: the times labres reads at all, whatever the member's zone.
FIRST_DAY, LAST_DAY = EARLIEST.date(), LATEST.date() - timedelta(days=1)
CHART_MEMBERS = 30  # the member chart shows the most-booked; the table lists all
# Heat map levels: (lowest mean utilization, CSS class, legend). Below the first: idle.
HEAT_LEVELS = ((80, "h5", "80% or more"), (50, "h4", "50–79%"), (25, "h3", "25–49%"), (5, "h2", "5–24%"), (0, "h1", "under 5%"))
# Characters a spreadsheet reads as the start of a formula (CSV injection, as OWASP lists them), after
# NFKC (fullwidth ＝＋－＠ and small ﹦﹢﹣﹫ become =+-@) and with the minus sign; tab and CR count as themselves.
FORMULA_START = frozenset("=+-@\u2212")
FORMULA_CONTROLS = frozenset("\t\r")


class PeriodForm(forms.Form):
    """Whole days, first to last, in the member's time zone."""

    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    end = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))

    def __init__(self, *args, today, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today
        for field in self.fields.values():
            field.error_messages["invalid"] = "Write a date like 2026-11-16."

    @classmethod
    def from_query(cls, query, today):
        """Bound to ?start=&end=; a missing one is filled from the default period (the last 7 days)."""
        _, _, first, last = preset_periods(today)[0]
        data = {"start": query.get("start") or first.isoformat(), "end": query.get("end") or last.isoformat()}
        return cls(data, today=today)

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start is None or end is None:
            return cleaned
        for name, day in (("start", start), ("end", end)):
            if not FIRST_DAY <= day <= LAST_DAY:
                self.add_error(name, f"{day.isoformat()} is out of range; write a date from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}.")
        if self.errors:
            return cleaned
        if end < start:
            self.add_error("end", "The end is before the start.")
        elif (end - start).days + 1 > LONGEST_PERIOD_DAYS:
            self.add_error("end", f"A period may be at most {LONGEST_PERIOD_DAYS} days; this one has {(end - start).days + 1}.")
        elif start > self.today:
            self.add_error("start", f"The period starts after today ({self.today.isoformat()}): there is no use to show yet.")
        return cleaned

    def problems(self):
        """Every error as one line a person can act on; the fields in error point at them."""
        for name in self.errors:
            if name in self.fields:
                self.fields[name].widget.attrs.update({"aria-invalid": "true", "aria-describedby": "period-errors"})
        return [f"{self.fields[name].label}: {' '.join(errors)}" if name in self.fields else " ".join(errors)
                for name, errors in self.errors.items()]

    def period(self, zone, now):
        return Period.of(self.cleaned_data["start"], self.cleaned_data["end"], zone, now)


def _read(request):
    """(form, period or None) for the query, in the member's time zone."""
    now = timezone.now()
    form = PeriodForm.from_query(request.GET, timezone.localdate(now))
    if not form.is_valid():
        return form, None
    return form, form.period(timezone.get_current_timezone(), now)


@login_required
def usage(request):
    """Booked against used GPU-hours per server, member and group; the idlest bookings; the heat map."""
    form, period = _read(request)
    today = form.today
    here = reverse("usage")
    presets = [
        {"label": label, "url": f"{here}?{urlencode({'start': first.isoformat(), 'end': last.isoformat()})}",
         "current": period is not None and (first, last) == (period.first_day, period.last_day)}
        for _, label, first, last in preset_periods(today)
    ]
    context = {"form": form, "presets": presets, "period": period, "problems": form.problems() if period is None else []}
    if period is None:
        return render(request, "monitoring/usage.html", context, status=400)
    report = cached_usage_report(period)
    query = {"start": period.first_day.isoformat(), "end": period.last_day.isoformat()}
    context.update(
        report=report,
        until_now=period.last_day >= today,  # the period's end is cut at now
        csv_links=[(kind, f"{reverse('usage-csv')}?{urlencode({**query, 'by': kind})}") for kind in CSV_KINDS],
        chart_data=chart_data(report),
        heat_rows=heat_rows(report.heat),
        heat_hours=heat_hours(),
        heat_days=DAY_NAMES,
        heat_levels=HEAT_LEVELS,
        booked_of_capacity=round(100 * report.total.booked / report.capacity) if report.capacity else None,
        active_percent=settings.GPU_ACTIVE_PERCENT,
        idle_min_hours=IDLE_MIN_BOOKED_HOURS,
        no_group=NO_GROUP,
    )
    return render(request, "monitoring/usage.html", context)


def chart_data(report):
    """What static/js/usage.js draws: booked and used-of-booked GPU-hours per server and per member, and each
    server's unbooked use."""
    members = report.members[:CHART_MEMBERS]
    return {
        "servers": {
            "labels": [s.name for s in report.servers],
            "booked": [round(s.booked, 2) for s in report.servers],
            "used": [round(s.used, 2) for s in report.servers],
            "unbooked": [round(s.unbooked, 2) for s in report.servers],
        },
        "members": {
            "labels": [m.name for m in members],
            "booked": [round(m.booked, 2) for m in members],
            "used": [round(m.used, 2) for m in members],
            "more": max(0, len(report.members) - len(members)),
        },
    }


def heat_level(util):
    """The CSS class of a mean utilization; h0 for no readings."""
    if util is None:
        return "h0"
    return next(css for lowest, css, _ in HEAT_LEVELS if util >= lowest)


_LEVEL_OF_PERCENT = [heat_level(percent) for percent in range(101)]  # 8,400 cells a page: look them up


def heat_hours():
    """The hour headers of the heat map: every hour named for screen readers, every sixth shown."""
    cells = []
    for hour in range(HOURS_PER_WEEK):
        day, clock = DAY_NAMES[hour // 24], hour % 24
        shown = f"{clock:02d}" if clock % 6 == 0 else ""
        cells.append(f'<th scope="col"><span class="visually-hidden">{day} {clock:02d}:00</span><b aria-hidden="true">{shown}</b></th>')
    return mark_safe("".join(cells))


def heat_rows(rows):
    """[(server, cells as HTML)]: 168 cells a row, each with its value in its title and as text for screen readers.

    Written here rather than in the template: 50 servers make 8,400 cells, which Django's
    template loop would take most of the page's time budget to render.
    """
    labels = [f"{DAY_NAMES[h // 24]} {h % 24:02d}:00" for h in range(HOURS_PER_WEEK)]
    rendered = []
    for row in rows:
        cells = []
        for hour, util in enumerate(row.utils):
            text = "no data" if util is None else f"{util:.0f}%"
            level = "h0" if util is None else _LEVEL_OF_PERCENT[max(0, min(100, int(util)))]
            cells.append(f'<td class="{level}" title="{labels[hour]}: {text}"><span>{text}</span></td>')
        # Only numbers and fixed labels go in unescaped; the server's name is escaped in the template.
        rendered.append((row.server, mark_safe("".join(cells))))
    return rendered


@login_required
def usage_csv(request):
    """?start=&end=&by=member|group|server|booking: one row per entity, as an attachment; 400 with a message on bad input."""
    kind = request.GET.get("by") or "member"
    if kind not in CSV_KINDS:
        return _bad_request(f"There is no “{kind[:40]}” breakdown. Use by=member, by=group, by=server or by=booking.")
    form, period = _read(request)
    if period is None:
        return _bad_request(" ".join(form.problems()) + " Give dates like ?start=2026-11-16&end=2026-11-23.")
    report = cached_usage_report(period, every_booking=kind == "booking")
    filename = f"labres-usage-{period.first_day.isoformat()}-{period.last_day.isoformat()}-{kind}.csv"
    response = HttpResponse(content_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    writer = csv.writer(response)
    header, rows = CSV_WRITERS[kind](report)
    writer.writerow(header)
    writer.writerows([_cell(value) for value in row] for row in rows)
    return response


def _bad_request(message):
    return HttpResponse(message + "\n", status=400, content_type="text/plain; charset=utf-8")


def _cell(value):
    """A CSV value: numbers rounded, None empty, text that a spreadsheet would run as a formula quoted."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, str) and _runs_as_formula(value):
        return "'" + value
    return value


def _runs_as_formula(text):
    """Whether a spreadsheet could read `text` as a formula: its first character is tab or CR, or the first one
    past what a spreadsheet may skip (white space, line breaks, zero-width and other invisible characters) starts one."""
    for char in text:
        if char in FORMULA_CONTROLS:
            return True
        if char.isspace() or unicodedata.category(char)[0] in "CZ":  # controls, invisible, unassigned, separators
            continue
        return unicodedata.normalize("NFKC", char)[:1] in FORMULA_START
    return False


def _local_iso(moment):
    return timezone.localtime(moment).isoformat(timespec="minutes") if moment else None


# Every breakdown names its figures alike: booked, of it used and idle (used_share: used of booked, 0 to 1),
# and for servers the use outside any booking beside them, never mixed into the share.
BOOKED_COLUMNS = ["booked_gpu_hours", "booked_used_gpu_hours", "booked_idle_gpu_hours", "used_share"]


def _booked(tally):
    return [tally.booked, tally.used, tally.idle, tally.share]


def _member_rows(report):
    header = ["member", "username", "groups", "bookings", *BOOKED_COLUMNS]
    return header, ([m.name, m.username, "; ".join(m.groups), m.bookings, *_booked(m)] for m in report.members)


def _group_rows(report):
    header = ["group", "members", "bookings", *BOOKED_COLUMNS]
    return header, ([g.name, g.members, g.bookings, *_booked(g)] for g in report.groups)


def _server_rows(report):
    header = ["server", "gpus", "capacity_gpu_hours", *BOOKED_COLUMNS, "unbooked_used_gpu_hours", "mean_utilization_percent"]
    return header, ([s.name, s.gpus, s.capacity, *_booked(s), s.unbooked, s.util_mean] for s in report.servers)


def _booking_rows(report):
    header = [
        "booking", "member", "username", "what", "purpose", "start", "end", "gpus",
        *BOOKED_COLUMNS, "mean_utilization_percent", "idle_alert",
    ]
    return header, (
        [b.booking_id, b.member, b.username, b.what, b.purpose, _local_iso(b.start), _local_iso(b.end), b.gpus,
         *_booked(b), b.util_mean, "yes" if b.idle_alert else "no"]
        for b in report.bookings
    )


CSV_WRITERS = {"member": _member_rows, "group": _group_rows, "server": _server_rows, "booking": _booking_rows}


urlpatterns = [
    path("usage/", usage, name="usage"),
    path("usage.csv", usage_csv, name="usage-csv"),
]
