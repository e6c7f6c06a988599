"""Signing in (rate-limited), the profile page (details, notifications, Slack link), and API tokens."""
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from labres.client_address import client_address
from notifications.events import EVENTS
from notifications.forms import PreferencesForm
from notifications.models import Preference
from notifications.slack_identity import SlackLookupError, link_member

from ..models import ApiToken, Profile
from ..signin import LimitedPasswordChangeForm, RefusalFormMixin, SignInRefused, reset_mail_allowed
from . import calendars

NEW_TOKEN_SESSION_KEY = "labres_new_api_token"


class SignInForm(RefusalFormMixin, AuthenticationForm):
    pass


class AdminSignInForm(RefusalFormMixin, AdminAuthenticationForm):
    pass


class SignInView(auth_views.LoginView):
    """Django's sign-in behind the guessing limits (reservations/signin.py): a refusal answers 429."""

    form_class = SignInForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if getattr(self.request, "signin_refused", None):
            response.status_code = 429
        return response


def admin_sign_in(request, extra_context=None):
    """The admin's own sign-in page, with the same limits and the same 429 (AdminSignInForm)."""
    response = admin.site.login(request, extra_context)
    if getattr(request, "signin_refused", None):
        response.status_code = 429
    return response


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change; the old password is checked under the sign-in limits."""

    form_class = LimitedPasswordChangeForm

    def get_form(self, form_class=None):
        form = super().get_form(form_class)
        form.request = self.request
        return form

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if getattr(self.request, "signin_refused", None):
            response.status_code = 429
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """Django's password reset, with at most PASSWORD_RESET_LIMIT mails per e-mail address and ten times
    that many requests per client address in PASSWORD_RESET_WINDOW (reservations/signin.py)."""

    def form_valid(self, form):
        try:
            allowed = reset_mail_allowed(form.cleaned_data["email"], client_address(self.request))
        except SignInRefused as refused:
            form.add_error("email", refused.message)
            response = self.form_invalid(form)
            response.status_code = 429
            return response
        if not allowed:  # the same answer as a mail sent: it must not tell whether the account exists
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)


class ProfileForm(forms.ModelForm):
    class Meta:
        model = Profile
        fields = ["display_name", "time_zone", "unix_username"]
        labels = {"display_name": "Display name", "time_zone": "Time zone", "unix_username": "Unix user name"}


class TokenForm(forms.Form):
    name = forms.CharField(label="Token name", max_length=100, help_text="Where you will use it, e.g. 'laptop' or 'thalys CLI'.")


@login_required
def profile(request):
    member_profile, _ = Profile.objects.get_or_create(user=request.user)
    form = ProfileForm(request.POST or None, instance=member_profile)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Profile saved.")
        return redirect("profile")
    return _render_profile(request, form=form, status=400 if request.method == "POST" else 200)


@require_POST
@login_required
def create_token(request):
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _render_profile(request, token_form=form, status=400)
    token, key = ApiToken.issue(request.user, form.cleaned_data["name"])
    # Post/redirect/get: a reload then shows the page again rather than making a second token. The key
    # rides in the session to the next page and is shown there once; the database keeps only a hash.
    request.session[NEW_TOKEN_SESSION_KEY] = {"id": token.pk, "key": key}
    return redirect(reverse("profile") + "#tokens-h")


@require_POST
@login_required
def revoke_token(request, pk):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    token.delete()
    messages.success(request, f"Token '{token.name}' revoked; programs using it can no longer sign in.")
    return redirect("profile")


@require_POST
@login_required
def notification_preferences(request):
    form = PreferencesForm(request.user, request.POST)
    if not form.is_valid():
        return _render_profile(request, notify_form=form, status=400)
    form.save()
    messages.success(request, "Notification choices saved.")
    return redirect(_notifications_url())


@require_POST
@login_required
def link_slack(request):
    """Find the member's Slack account from their e-mail (users.lookupByEmail) and store its id."""
    Profile.objects.get_or_create(user=request.user)
    email = request.user.email
    if not email:
        messages.error(request, "Your account has no e-mail address, and Slack finds you by it: ask staff to add it, or to set your Slack id.")
        return redirect(_notifications_url())
    try:
        with transaction.atomic():  # a savepoint: the id may already belong to another member
            slack_id = link_member(request.user)
    except SlackLookupError as error:
        messages.error(request, f"Could not link Slack: {error}")
    except IntegrityError:
        messages.error(request, f"The Slack account with {email} is already linked to another member; ask staff to sort it out.")
    else:
        if slack_id:
            messages.success(request, f"Linked to your Slack account ({slack_id}): labres can send you direct messages now.")
        else:
            messages.error(request, f"Slack knows no account with {email}. Ask staff to set your Slack id, or to change your e-mail address to the one Slack has.")
    return redirect(_notifications_url())


@require_POST
@login_required
def unlink_slack(request):
    Profile.objects.filter(user=request.user).update(slack_user_id="")
    text = "Slack unlinked: labres sends you no more direct messages."
    only_slack = [
        EVENTS[event].label for event, channels in Preference.objects.filter(user=request.user).values_list("event", "channels")
        if channels and set(channels) <= {"slack_dm"}
    ]
    if only_slack:
        text += f" You chose only Slack for: {', '.join(only_slack)}; tick e-mail for these below to go on hearing about them."
    messages.success(request, text)
    return redirect(_notifications_url())


def _new_token(request):
    """The token create_token just made and its key, taken out of the session: shown on one page only."""
    new = request.session.pop(NEW_TOKEN_SESSION_KEY, None)
    token = request.user.api_tokens.filter(pk=new["id"]).first() if new else None
    return {"new_token": token, "new_key": new["key"]} if token else {}


def _notifications_url():
    return reverse("profile") + "#notif-h"


def _render_profile(request, *, form=None, token_form=None, notify_form=None, status=200, **extra):
    member_profile, _ = Profile.objects.get_or_create(user=request.user)
    extra.update(_new_token(request))
    context = {
        "form": form or ProfileForm(instance=member_profile),
        "token_form": token_form or TokenForm(),
        "tokens": request.user.api_tokens.all(),
        "notify_form": notify_form or PreferencesForm(request.user),
        "slack_user_id": member_profile.slack_user_id,
        "slack_ready": bool(settings.SLACK_BOT_TOKEN),
        **calendars.profile_context(request),
        **extra,
    }
    response = render(request, "reservations/profile.html", context, status=status)
    if "new_key" in extra:
        add_never_cache_headers(response)  # Back or a restored tab must not show the key again from a cache
    return response
