from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from ..selectors import member_bookings, now_board

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
    servers, rooms = now_board(moment)
    running, upcoming, _ = member_bookings(request.user, moment)
    return {"servers": servers, "rooms": rooms, "running": running, "upcoming": upcoming[:NEXT_SHOWN], "moment": moment, **extra}
