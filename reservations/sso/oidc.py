"""Sign-in through an OpenID Connect provider (Keycloak, Authentik, Google, Entra ID, GitLab), with
mozilla-django-oidc: the authorization code flow with PKCE, the provider's endpoints read from its discovery
document (OIDC_ISSUER/.well-known/openid-configuration), and sign-out ending the provider's session too
where it offers that (RP-initiated logout).

A member is found by e-mail (the provider must say it is verified, or say nothing about it), else made
with the user name the provider gives; on each sign-in their names, staff flag, primary group and unix
user name follow the claims (members.py; labres/settings.py, "Single sign-on", says which claims).
"""
import logging
import time
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect, resolve_url
from django.urls import reverse
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from .members import UNMANAGED, follow_directory

logger = logging.getLogger(__name__)

# mozilla-django-oidc's endpoint settings, and where the discovery document gives each.
DISCOVERED = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}
DISCOVERY_SECONDS = 3600  # how long a process keeps a provider's document before reading it again
_documents = {}  # issuer -> (monotonic time read, document)


class DiscoveryError(Exception):
    """The provider's discovery document could not be read, or is not one for OIDC_ISSUER."""


def provider_document():
    """OIDC_ISSUER's discovery document, read at most once an hour per process."""
    issuer = settings.OIDC_ISSUER
    kept = _documents.get(issuer)
    if kept and time.monotonic() - kept[0] < DISCOVERY_SECONDS:
        return kept[1]
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT, verify=settings.OIDC_VERIFY_SSL)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as error:
        raise DiscoveryError(f"{url}: {error}") from None
    if not isinstance(document, dict) or str(document.get("issuer", "")).rstrip("/") != issuer:
        raise DiscoveryError(f"{url} is not the discovery document of {issuer} (its issuer differs)")
    missing = [key for key in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not document.get(key)]
    if missing:
        raise DiscoveryError(f"{url} names no {', '.join(missing)}")
    _documents[issuer] = (time.monotonic(), document)
    return document


def oidc_setting(name, *default):
    """mozilla-django-oidc's settings, with the provider's endpoints from its discovery document."""
    if name in DISCOVERED:
        return provider_document().get(DISCOVERED[name]) or (default[0] if default else None)
    return import_from_settings(name, *default)


def sign_in_choices(request):
    """Template context (every page): how the sign-in page offers OIDC, or None when it is off."""
    if not settings.OIDC_ISSUER:
        return {"sso_oidc": None}
    return {"sso_oidc": {"name": settings.OIDC_NAME, "only": settings.OIDC_ONLY}}


class OIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, reading the provider's endpoints at sign-in and making and updating
    members from the claims (ID token and userinfo together)."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, *args, **kwargs):
        # Django makes the backends for every authenticate(), password ones too: the provider is asked
        # only once a callback brings a code (authenticate below).
        self.UserModel = get_user_model()

    def authenticate(self, request, **kwargs):
        if request is None or "nonce" not in kwargs:  # only the callback view passes a nonce: a password sign-in
            return None
        try:
            super().__init__()
            return super().authenticate(request, **kwargs)
        except (DiscoveryError, requests.RequestException, SuspiciousOperation) as error:
            logger.warning("OIDC sign-in failed: %s", error)
            return None

    def verify_token(self, token, **kwargs):
        payload = super().verify_token(token, **kwargs)
        if "nonce" in kwargs:  # the ID token: from our issuer, for this portal (mozilla-django-oidc checks neither)
            audience = payload.get("aud")
            audience = audience if isinstance(audience, list) else [audience]
            if str(payload.get("iss", "")).rstrip("/") != settings.OIDC_ISSUER or settings.OIDC_RP_CLIENT_ID not in audience:
                raise SuspiciousOperation("The ID token was not issued by OIDC_ISSUER for OIDC_CLIENT_ID.")
        return payload

    def get_userinfo(self, access_token, id_token, payload):
        """The ID token's claims and the userinfo endpoint's: some providers put groups in one only."""
        if not self.OIDC_OP_USER_ENDPOINT:
            return dict(payload)
        userinfo = super().get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("The userinfo endpoint answered for another subject than the ID token's.")
        return {**payload, **userinfo}

    def verify_claims(self, claims):
        if not claims.get("email"):
            self._say(f"{settings.OIDC_NAME} gave no e-mail address for your account; labres needs one (ask staff to check the scopes).")
            return False
        if claims.get("email_verified") is False:
            self._say(f"{settings.OIDC_NAME} has not verified the e-mail address of your account; verify it there, then sign in again.")
            return False
        return True

    def create_user(self, claims):
        """A new member: the provider's user name (OIDC_USERNAME_CLAIM) if it is a valid, free one, else their e-mail."""
        username = self.get_username(claims)
        if self.UserModel.objects.filter(username=username).exists():
            self._say(f"labres already has an account named {username}, with another e-mail address than {settings.OIDC_NAME} gives: ask staff.")
            raise SuspiciousOperation(f"OIDC user name {username!r} belongs to an account with another e-mail")
        user = self.UserModel.objects.create_user(username, email=claims["email"])  # no password: it signs in through the provider
        return self.update_user(user, claims)

    def get_username(self, claims):
        username = str(claims.get(settings.OIDC_USERNAME_CLAIM) or "").strip()
        field = self.UserModel._meta.get_field(self.UserModel.USERNAME_FIELD)
        try:
            field.run_validators(username)
        except ValidationError:
            username = ""
        return username if username and len(username) <= field.max_length else claims["email"]

    def update_user(self, user, claims):
        """Names, e-mail, staff flag, primary group and unix user name, as the claims say now."""
        return follow_directory(
            user,
            email=claims["email"],
            first_name=str(claims.get(settings.OIDC_FIRST_NAME_CLAIM) or ""),
            last_name=str(claims.get(settings.OIDC_LAST_NAME_CLAIM) or ""),
            is_staff=staff_from(claims),
            groups=groups_from(claims),
            group_map=settings.OIDC_GROUP_MAP,
            unix_username=str(claims.get(settings.OIDC_UNIX_USERNAME_CLAIM) or "") if settings.OIDC_UNIX_USERNAME_CLAIM else "",
        )

    def _say(self, text):
        messages.error(self.request, text)
        self.request.sso_said = True  # Callback.login_failure says nothing more


def staff_from(claims):
    """Whether the claims make a member staff (OIDC_STAFF_CLAIM, OIDC_STAFF_VALUE); UNMANAGED without a staff claim."""
    if not settings.OIDC_STAFF_CLAIM:
        return UNMANAGED
    value, wanted = claims.get(settings.OIDC_STAFF_CLAIM), settings.OIDC_STAFF_VALUE
    values = value if isinstance(value, list) else [value]
    if wanted:
        return wanted in [str(item) for item in values]
    return any(item is True or str(item).lower() in ("true", "1", "yes") for item in values)


def groups_from(claims):
    """The member's group names at the provider (OIDC_GROUPS_CLAIM); UNMANAGED without a groups claim."""
    if not settings.OIDC_GROUPS_CLAIM:
        return UNMANAGED
    value = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    return [value] if isinstance(value, str) else [str(item) for item in value]


def _oidc_on():
    if not settings.OIDC_ISSUER:
        raise Http404("OpenID Connect sign-in is not set up here.")


class Start(OIDCAuthenticationRequestView):
    """Sends the browser to the provider (with state, nonce and a PKCE challenge kept in the session)."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)  # the endpoint is read in get(), where a provider out of reach is said so

    def get(self, request):
        _oidc_on()
        try:
            self.OIDC_OP_AUTH_ENDPOINT = oidc_setting("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except DiscoveryError as error:
            logger.warning("OIDC provider out of reach: %s", error)
            messages.error(request, f"{settings.OIDC_NAME} cannot be reached just now; try again in a minute.")
            return redirect("login")
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class Callback(OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back with a code: mozilla-django-oidc's, saying a failure."""

    get_settings = staticmethod(oidc_setting)

    def get(self, request):
        _oidc_on()
        return super().get(request)

    @property
    def failure_url(self):
        return resolve_url(settings.LOGIN_REDIRECT_URL_FAILURE)

    def login_failure(self):
        if not getattr(self.request, "sso_said", False):
            messages.error(self.request, f"Signing in with {settings.OIDC_NAME} did not work; try again, or ask staff.")
        return super().login_failure()


class SignOut(auth_views.LogoutView):
    """Django's sign-out; a member who signed in through the provider is signed out there too (RP-initiated
    logout, with the ID token as the hint) where its discovery document names an end_session_endpoint."""

    def post(self, request, *args, **kwargs):
        id_token = request.session.get("oidc_id_token")
        response = super().post(request, *args, **kwargs)
        end_session = _end_session_endpoint() if id_token else None
        if not end_session:
            return response
        query = {
            "id_token_hint": id_token,
            "client_id": settings.OIDC_RP_CLIENT_ID,
            "post_logout_redirect_uri": request.build_absolute_uri(reverse("login")),
        }
        return HttpResponseRedirect(f"{end_session}{'&' if '?' in end_session else '?'}{urlencode(query)}")


def _end_session_endpoint():
    if not settings.OIDC_ISSUER:
        return None
    try:
        return provider_document().get("end_session_endpoint")
    except DiscoveryError as error:
        logger.warning("Signed out here only; the OIDC provider is out of reach: %s", error)
        return None
