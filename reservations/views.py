from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from .selectors import now_board


@login_required
def now(request):
    """Home: every server's GPUs and every room, free or held by whom until when."""
    servers, rooms = now_board()
    return render(request, "reservations/now.html", {"servers": servers, "rooms": rooms, "now": timezone.now()})
