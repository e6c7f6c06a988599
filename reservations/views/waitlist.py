"""The waitlist on the web: join from the booking form, withdraw from My bookings, claim an offer.

A claim link (e-mail, Slack button) opens a page with one button; the POST books. A GET never
books: mail scanners and link previews fetch links. Claiming needs the entry's own member,
signed in: the link's token alone books for nobody.
"""
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from ..errors import BookingError, NotAllowed, OfferUnavailable
from ..models import Booking, WaitlistEntry
from ..services import waitlist
from ..templatetags.labres import span


class JoinForm(forms.Form):
    server = forms.CharField(required=False, max_length=64)
    gpus = forms.CharField(required=False, max_length=4)
    room = forms.CharField(required=False, max_length=100)
    devices = forms.CharField(required=False, max_length=100)  # the GPUs picked on the form (an offer of others says so)
    cpu_cores = forms.CharField(required=False, max_length=20)
    memory_gib = forms.CharField(required=False, max_length=20)
    length = forms.CharField(max_length=20, error_messages={"required": "Give a length like 2h, 1h30m or 1d."})
    purpose = forms.CharField(required=False, max_length=200)


@require_POST
@login_required
def join(request):
    form = JoinForm(request.POST)
    if not form.is_valid():
        field, problems = next(iter(form.errors.items()))
        messages.error(request, f"Could not put you on the waiting list: {field}: {' '.join(problems)}")
        return redirect("book")
    data = form.cleaned_data
    try:
        entry = waitlist.join(
            request.user, server=data["server"] or None, gpus=data["gpus"] or None, room=data["room"] or None,
            length=data["length"], purpose=data["purpose"], wanted=data["devices"],
            cpu_cores=data["cpu_cores"] or 0, memory_gib=data["memory_gib"] or 0,
        )
    except BookingError as error:
        messages.error(request, f"Could not put you on the waiting list: {error.message}")
        return redirect("book")
    _, told = waitlist.how_you_will_hear(request.user)
    messages.success(request, f"You are on the waiting list for {entry.what} ({entry.length_text}), place {waitlist.position(entry)}. {told}")
    return redirect("my-bookings")


@require_POST
@login_required
def withdraw(request, pk):
    entry = get_object_or_404(WaitlistEntry, pk=pk)
    try:
        waitlist.withdraw(entry, by=request.user)
    except NotAllowed as error:
        return render(request, "403.html", {"message": error.message}, status=403)
    except BookingError as error:
        messages.error(request, error.message)
        return redirect("my-bookings")
    messages.success(request, f"You left the waiting list for {entry.what}.")
    return redirect("my-bookings")


@login_required
@require_http_methods(["GET", "POST"])
def claim(request, pk, token):
    entry = get_object_or_404(WaitlistEntry.objects.select_related("user", "server", "room"), pk=pk)
    if entry.user_id != request.user.pk:
        return render(request, "403.html", {"message": "This offer is for someone else; only they can claim it."}, status=403)
    if request.method == "POST":
        try:
            booking = waitlist.claim(entry, by=request.user, token=token, source=Booking.Source.WEB)
        except BookingError as error:
            entry.refresh_from_db()
            return _claim_page(request, entry, token, error=error.message, status=409 if isinstance(error, OfferUnavailable) else 400)
        messages.success(request, f"Booked {booking.what}, {span(booking.start, booking.end)}.")
        response = redirect("booking-detail", pk=booking.pk)
        response.status_code = 303
        return response
    return _claim_page(request, entry, token)


def _claim_page(request, entry, token, *, error=None, status=200):
    now = timezone.now()
    claimable = entry.state == WaitlistEntry.State.OFFERED and entry.token == token and entry.offer_expires_at > now
    if entry.state == WaitlistEntry.State.CLAIMED and error is None:
        pass  # the page says it was claimed and links the booking (e.g. the Slack button booked it already)
    elif not claimable and error is None:
        try:
            waitlist._check_claimable(entry, token, now)
        except BookingError as problem:
            error = problem.message
    context = {"entry": entry, "token": token, "claimable": claimable, "error": error, "position": waitlist.position(entry)}
    return render(request, "reservations/waitlist_claim.html", context, status=status)
