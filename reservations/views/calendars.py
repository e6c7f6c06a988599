"""Calendar feeds: the secret .ics addresses calendar apps poll, and the profile page's controls for them."""
from urllib.parse import quote

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.utils.http import http_date
from django.views.decorators.http import require_POST, require_safe

from .. import feeds
from ..models import CalendarFeed, Room, Server

NOT_FOUND = (
    "No calendar at this address. It may have been reset: copy the current address from your profile page in labres.\n"
)


@require_safe
def feed(request, token):
    """GET /calendar/<token>.ics: the feed, or 304 when the app's copy (ETag, Last-Modified) is current.

    No session, no sign-in: the address is the key. Unknown and reset addresses answer 404
    (and the logs show the address redacted, see labres.logs).
    """
    found = feeds.find(token)
    if found is None:
        return HttpResponse(NOT_FOUND, status=404, content_type="text/plain; charset=utf-8")
    now = timezone.now()
    base_url = request.build_absolute_uri("/")
    current = feeds.version(found, now, base_url)
    response = get_conditional_response(request, etag=current.etag, last_modified=int(current.last_modified.timestamp()))
    if response is None:
        response = HttpResponse(feeds.render(found, now, base_url), content_type="text/calendar; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="{_filename(found)}"'
    response["ETag"] = current.etag
    response["Last-Modified"] = http_date(current.last_modified.timestamp())
    # Apps may keep a copy but must ask again (cheaply: 304) before using it; no shared caches.
    response["Cache-Control"] = "private, no-cache"
    response["X-Robots-Tag"] = "noindex, nofollow"
    feeds.touch(found, now)
    return response


def _filename(found):
    return f"labres-{found.scope}.ics"  # no names: they would cost a query on every full answer


class AddFeedForm(forms.Form):
    """Which shared calendar to add: 'lab', 'server:<id>' or 'room:<id>'."""

    calendar = forms.ChoiceField(label="Add a calendar of")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        servers = [(f"server:{s.pk}", f"Server {s.name}") for s in Server.objects.filter(active=True)]
        rooms = [(f"room:{r.pk}", f"Room {r.name}") for r in Room.objects.filter(active=True)]
        self.fields["calendar"].choices = [("lab", "The whole lab"), ("Servers", servers), ("Rooms", rooms)]

    def target(self):
        """(scope, server, room) for the chosen calendar."""
        value = self.cleaned_data["calendar"]
        if value == "lab":
            return CalendarFeed.Scope.LAB, None, None
        kind, pk = value.split(":")
        if kind == "server":
            return CalendarFeed.Scope.SERVER, Server.objects.get(pk=pk), None
        return CalendarFeed.Scope.ROOM, None, Room.objects.get(pk=pk)


def profile_context(request):
    """The profile page's calendar section: the member's own feed first, then the shared ones."""
    own = feeds.own_feed(request.user)
    shared = list(
        request.user.calendar_feeds.exclude(scope=CalendarFeed.Scope.MINE).select_related("user__profile", "server", "room")
    )
    return {"calendar_feeds": [_links(request, own)] + [_links(request, item) for item in shared], "add_feed_form": AddFeedForm()}


def _links(request, item):
    https = request.build_absolute_uri(reverse("calendar-feed", args=[item.token]))
    webcal = "webcal://" + https.split("://", 1)[1]
    return {
        "feed": item,
        "url": https,
        "webcal": webcal,
        "google": "https://calendar.google.com/calendar/r?cid=" + quote(webcal, safe=""),
        "outlook": "https://outlook.live.com/calendar/0/addfromweb?url=" + quote(https, safe="") + "&name=" + quote(item.title, safe=""),
    }


def _calendars_url():
    return reverse("profile") + "#cal-h"


@require_POST
@login_required
def add_feed(request):
    form = AddFeedForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose the lab, one of the servers or one of the rooms to add its calendar.")
        return redirect(_calendars_url())
    scope, server, room = form.target()
    try:
        with transaction.atomic():
            item, created = CalendarFeed.objects.get_or_create(user=request.user, scope=scope, server=server, room=room)
    except IntegrityError:  # the same form sent twice at once: the other request made it
        item, created = CalendarFeed.objects.get(user=request.user, scope=scope, server=server, room=room), False
    text = f"Added “{item.title}”: copy its address into your calendar app." if created else f"You have “{item.title}” already."
    messages.success(request, text)
    return redirect(_calendars_url())


@require_POST
@login_required
def reset_feed(request, pk):
    item = feeds.reset(get_object_or_404(CalendarFeed, pk=pk, user=request.user))
    messages.success(
        request,
        f"“{item.title}” has a new address; the old one no longer works. Put the new one in your calendar apps.",
    )
    return redirect(_calendars_url())


@require_POST
@login_required
def remove_feed(request, pk):
    item = get_object_or_404(CalendarFeed, pk=pk, user=request.user)
    if item.scope == CalendarFeed.Scope.MINE:
        messages.error(request, "Your own calendar cannot be removed; reset its address to stop the old one working.")
        return redirect(_calendars_url())
    item.delete()
    messages.success(request, f"Removed “{item.title}”; its address no longer works.")
    return redirect(_calendars_url())
