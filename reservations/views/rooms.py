"""Rooms: the list with what is on now and next, and one room's week."""
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone

from reservations.models import Room
from reservations.timeline import parse_day, room_board
from reservations.timeline import room_week as build_room_week


@login_required
def room_list(request):
    """Every active room: who holds it now, who is next, a link to its week."""
    return render(request, "reservations/rooms.html", {"rooms": room_board()})


@login_required
def room_week(request, pk):
    """One room's week, ?week=YYYY-MM-DD (any day of it); a date that cannot be read shows this week, with a note."""
    room = get_object_or_404(Room.objects.select_related("unit"), pk=pk, active=True)
    zone = timezone.get_current_timezone()
    now = timezone.now()
    today = timezone.localdate(now, zone)
    problems = []
    day = today
    if request.GET.get("week"):
        day = parse_day(request.GET["week"])
        if day is None:
            problems.append(f"“{request.GET['week'][:40]}” is not a date this page can show; showing this week. Write dates like {today.isoformat()}.")
            day = today
    week = build_room_week(room, request.user, day=day, zone=zone, now=now)
    here = reverse("room-week", args=[room.pk])
    return render(
        request,
        "reservations/room_week.html",
        {
            "week": week,
            "room": room,
            "problems": problems,
            "current": week.window.contains(now),
            "previous_url": f"{here}?week={week.window.previous_day.isoformat()}",
            "next_url": f"{here}?week={week.window.next_day.isoformat()}",
            "this_week_url": here,
            "zone_name": timezone.get_current_timezone_name(),
        },
    )
