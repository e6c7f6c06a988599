"""The availability timeline: every GPU, server and room against a day or a week."""
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from reservations.timeline import VIEWS, build_timeline, parse_day


@login_required
def timeline(request):
    """?view=day|week&date=YYYY-MM-DD; a value that cannot be read falls back to the default, with a note."""
    zone = timezone.get_current_timezone()
    now = timezone.now()
    today = timezone.localdate(now, zone)
    view, day, problems = _read_query(request.GET, today)
    data = build_timeline(request.user, view=view, day=day, zone=zone, now=now)
    window = data.window
    here = reverse("timeline")

    def link(view, day=None):
        query = {"view": view, **({"date": day.isoformat()} if day else {})}
        return f"{here}?{urlencode(query)}"

    # Switching views keeps the place: today if it is in the window, else the window's first day.
    focus = today if window.first_day <= today <= window.last_day else window.first_day
    context = {
        "timeline": data,
        "window": window,
        "problems": problems,
        "zone_name": timezone.get_current_timezone_name(),
        "current": window.contains(now),
        "previous_url": link(view, window.previous_day),
        "next_url": link(view, window.next_day),
        "today_url": link(view),
        "day_url": link("day", focus),
        "week_url": link("week", focus),
        "book_path": reverse("book"),
        "track_rem": 54 if view == "day" else 63,
    }
    return render(request, "reservations/timeline.html", context)


def _read_query(query, today):
    problems = []
    view = query.get("view") or "week"
    if view not in VIEWS:
        problems.append(f"There is no “{view[:40]}” view; showing the week. Use view=day or view=week.")
        view = "week"
    day = today
    if query.get("date"):
        day = parse_day(query["date"])
        if day is None:
            problems.append(f"“{query['date'][:40]}” is not a date the timeline can show; showing today. Write dates like {today.isoformat()}.")
            day = today
    return view, day, problems
