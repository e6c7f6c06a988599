"""Signing in (rate-limited), the profile page, and API tokens."""
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ..models import ApiToken, Profile


class SignInView(auth_views.LoginView):
    """Django's sign-in, refusing a user name or an address after too many failures."""

    def post(self, request, *args, **kwargs):
        if any((cache.get(key) or 0) >= limit for key, limit in _attempt_keys(request)):
            form = self.get_form()
            minutes = max(1, settings.LOGIN_ATTEMPTS_WINDOW // 60)
            form.errors.clear()
            form.add_error(None, f"Too many failed sign-ins for this account or address. Try again in {minutes} minutes.")
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        for key, _ in _attempt_keys(self.request):
            cache.add(key, 0, timeout=settings.LOGIN_ATTEMPTS_WINDOW)
            cache.incr(key)
        return super().form_invalid(form)

    def form_valid(self, form):
        cache.delete(_attempt_keys(self.request)[0][0])
        return super().form_valid(form)


def _attempt_keys(request):
    """(cache key, limit) for the user name tried and for the address it came from.

    An address gets ten times the allowance: a whole lab may sit behind one NAT address.
    """
    username = request.POST.get("username", "").strip().lower()[:150]
    limit = settings.LOGIN_ATTEMPTS_LIMIT
    return [
        (f"signin-fail:user:{username}", limit),
        (f"signin-fail:addr:{request.META.get('REMOTE_ADDR', '')}", 10 * limit),
    ]


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
    # Shown once, on this response only; the database keeps a hash.
    return _render_profile(request, new_token=token, new_key=key)


@require_POST
@login_required
def revoke_token(request, pk):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    token.delete()
    messages.success(request, f"Token '{token.name}' revoked; programs using it can no longer sign in.")
    return redirect("profile")


def _render_profile(request, *, form=None, token_form=None, status=200, **extra):
    member_profile, _ = Profile.objects.get_or_create(user=request.user)
    context = {
        "form": form or ProfileForm(instance=member_profile),
        "token_form": token_form or TokenForm(),
        "tokens": request.user.api_tokens.all(),
        **extra,
    }
    return render(request, "reservations/profile.html", context, status=status)
