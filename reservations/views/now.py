import functools

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe

from ..selectors import awaiting_approval, member_bookings, now_board
from ..templatetags.labres import when

NEXT_SHOWN = 3  # upcoming bookings of the member shown on the Now page


@login_required
def now(request):
    """Home: every server's GPUs and every room, free or held by whom; the member's own bookings."""
    return render(request, "reservations/now.html", now_context(request))


@login_required
def panel(request):
    """The same content without the page around it, for htmx polling."""
    return render(request, "reservations/_now_panel.html", now_context(request))


def now_context(request, **extra):
    moment = timezone.now()
    running, upcoming, _ = member_bookings(request.user, moment, upcoming_limit=NEXT_SHOWN)
    groups = now_board(moment)
    when_cached = functools.lru_cache(maxsize=None)(when)  # many cards show the same few times
    for group in groups:
        group.cards = mark_safe("".join(_card(unit, request.user, when_cached) for unit in group.units))
    pending, pending_count = awaiting_approval(moment) if request.user.is_staff else ([], 0)
    return {
        "groups": groups, "running": running, "upcoming": upcoming, "moment": moment,
        "pending": pending, "pending_count": pending_count, **extra,
    }


def _card(unit, viewer, when=when):
    """One unit's card. Built here, not in a template: bench/pages.py's large lab (402 cards) took 1 ms
    so, against 40 ms with a template include per card (same HTML, same process)."""
    current, upcoming = unit.current, unit.next
    if current is None:
        state, tag, holder = "free", "free", ""
    else:
        state = "mine" if current.user_id == viewer.pk else "busy"
        tag = "you" if state == "mine" else "busy"
        purpose = f" — {escape(current.purpose)}" if current.purpose else ""
        holder = f"<small>{escape(current.name)} until {when(current.end)}{purpose}</small>"
    following = f"<small>next: {escape(upcoming.name)} from {when(upcoming.start)}</small>" if upcoming else ""
    return f'<div class="unit {state}"><span class="name">{escape(unit.label)}</span><span class="tag">{tag}</span>{holder}{following}</div>\n'
