"""One limit on password guessing, for every place a password is checked: web and admin sign-in and
the API's token endpoint (all call authenticate(), so LimitedModelBackend, or LimitedLDAPBackend with a
directory), and password reset
e-mails (reset_mail_allowed).

Who is refused, L being LOGIN_ATTEMPTS_LIMIT failures within LOGIN_ATTEMPTS_WINDOW:
- an account, after L failures, from every address it has not signed in from in the last 30 days;
- an address, after 10 L failures (whatever names were tried), for every such account;
- from an address where an account did sign in lately (a familiar one), that account is judged by
  its own counter there alone (L failures), not by the account's or the address's counters.
So a guesser gets L tries per account and 10 L per address in a window, while the member who signs
in from their usual address is locked out neither by guesses from elsewhere nor by someone at the
same address (a lab's NAT) trying other names. Only an account's own failures at its own address
lock it there. Unknown user names count like real ones: a refusal says nothing about who exists.

The user name is counted as it is authenticated: normalized (NFKC) by the user model, then looked
up exactly (Django's lookup is case-sensitive), so 'ｔｕser4' is 'tuser4' for both.

Counters are rows (SignInCounter) bumped under a row lock before the password is checked: N racing
guesses get at most L checks, on SQLite and PostgreSQL, with any cache or none (a Redis outage
neither opens nor closes these limits).
"""
import hashlib
import ipaddress
import math
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import PasswordChangeForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from labres.client_address import client_address

from .models import SignInCounter

FAMILIAR_FOR = timedelta(days=30)
ADDRESS_FACTOR = 10  # a whole lab may sit behind one NAT address


class SignInRefused(PermissionDenied):
    """Too many failures for this account or from this address: the password was not checked."""

    def __init__(self, message, retry_after):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after  # seconds


class Attempt:
    """A password check the limits let through; it stays counted as a failure unless it succeeded()."""

    def __init__(self, counted, familiar_key, now):
        self.counted = counted
        self.familiar_key = familiar_key
        self.now = now

    def succeeded(self):
        for key in self.counted:
            _bump(key, timedelta(0), self.now, delta=-1)
        if self.familiar_key:
            SignInCounter.objects.update_or_create(key=self.familiar_key, defaults={"count": 1, "expires": self.now + FAMILIAR_FOR})


def begin_sign_in(name, address, now=None):
    """Count one password check for user name `name` from `address` (None: not known), or refuse it.

    Returns an Attempt; raises SignInRefused when a limit is reached.
    """
    now = now or timezone.now()
    address = _network(address)
    window = timedelta(seconds=settings.LOGIN_ATTEMPTS_WINDOW)
    limit = settings.LOGIN_ATTEMPTS_LIMIT
    familiar_key = _key("familiar", name, address) if address else None
    if familiar_key and SignInCounter.objects.filter(key=familiar_key, expires__gt=now).exists():
        limits = [(_key("account-at", name, address), limit, "for this account")]
    else:
        limits = [(_key("address", address), ADDRESS_FACTOR * limit, "from your address")] if address else []
        limits.append((_key("account", name), limit, "for this account"))
    counted = []
    for key, allowed, whose in limits:
        count, expires = _bump(key, window, now)
        counted.append(key)
        if count > allowed:
            wait = max(1, math.ceil((expires - now).total_seconds()))
            raise SignInRefused(f"Too many failed sign-ins {whose}. Try again in {math.ceil(wait / 60)} minutes.", wait)
    return Attempt(counted, familiar_key, now)


def reset_mail_allowed(email, address, now=None):
    """Count one password reset request: raises SignInRefused when `address` asked too often; returns
    False (send nothing, and say nothing: the answer must not tell who has an account) when this
    e-mail address had its share of mails already."""
    now = now or timezone.now()
    window = timedelta(seconds=settings.PASSWORD_RESET_WINDOW)
    limit = settings.PASSWORD_RESET_LIMIT
    count, expires = _bump(_key("reset-address", _network(address)), window, now)
    if count > ADDRESS_FACTOR * limit:
        wait = max(1, math.ceil((expires - now).total_seconds()))
        raise SignInRefused(f"Too many password reset requests from your address. Try again in {math.ceil(wait / 60)} minutes.", wait)
    # Django finds the accounts with email__iexact: count every spelling of one address together.
    count, _ = _bump(_key("reset-email", email.strip().lower()), window, now)
    return count <= limit


class LimitedModelBackend(ModelBackend):
    """Django's ModelBackend behind the guessing limits. A refusal stops authenticate() (no other
    backend is asked) and is left on the request as `signin_refused`, for the view to say so.
    LimitedLDAPBackend (reservations/sso/ldap.py) asks the directory in check_password's place."""

    # Whether 'Alice' and 'alice' are one account (an LDAP directory's names are): then they share a counter.
    names_ignore_case = False

    def authenticate(self, request, username=None, password=None, **kwargs):
        UserModel = get_user_model()
        if username is None:
            username = kwargs.pop(UserModel.USERNAME_FIELD, None)
        if username is None or password is None:
            return None
        name = UserModel.normalize_username(username)
        counted = name.casefold() if self.names_ignore_case else name
        try:
            attempt = begin_sign_in(counted, client_address(request) if request is not None else None)
        except SignInRefused as refused:
            if request is not None:
                request.signin_refused = refused
            raise
        user = self.check_password(request, name, password, **kwargs)
        if user is not None:
            attempt.succeeded()
        return user

    def check_password(self, request, name, password, **kwargs):
        """The user whose password this is, or None: the check the limits count."""
        return super().authenticate(request, username=name, password=password, **kwargs)


class RefusalFormMixin:
    """For AuthenticationForm: a refused attempt says so (and when to try again), not 'wrong password'."""

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            refused = getattr(self.request, "signin_refused", None)
            if refused is None:
                raise
            raise ValidationError(refused.message, code="too_many_attempts") from None


class LimitedPasswordChangeForm(PasswordChangeForm):
    """Changing one's password checks the old one: a stolen session may not guess it freely either.
    The view sets `request`."""

    request = None

    def clean_old_password(self):
        try:
            attempt = begin_sign_in(self.user.get_username(), client_address(self.request) if self.request else None)
        except SignInRefused as refused:
            self.request.signin_refused = refused
            raise ValidationError(refused.message, code="too_many_attempts") from None
        old_password = super().clean_old_password()
        attempt.succeeded()
        return old_password


def _network(address):
    """An IPv6 client holds a whole /64 at least: it counts as one address."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else address


def _key(kind, *parts):
    return f"{kind}:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:48]


def _bump(key, window, now, delta=1):
    """Add `delta` to counter `key` (a fresh one, lasting `window`, if it ran out); returns (count, expires).

    Under a row lock (PostgreSQL) or the database's write lock (SQLite, IMMEDIATE): atomic.
    """
    with transaction.atomic():
        row = SignInCounter.objects.select_for_update().filter(key=key).first()
        if row is None:
            if delta < 0:
                return 0, now
            try:
                with transaction.atomic():
                    SignInCounter.objects.filter(expires__lte=now).delete()  # the ones that ran out
                    row = SignInCounter.objects.create(key=key, count=delta, expires=now + window)
                return row.count, row.expires
            except IntegrityError:  # another request made it first: count on it
                row = SignInCounter.objects.select_for_update().get(key=key)
        if row.expires <= now:
            row.count, row.expires = 0, now + window
        row.count = max(0, row.count + delta)
        row.save(update_fields=["count", "expires"])
        return row.count, row.expires
