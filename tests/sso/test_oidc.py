"""Signing in through a real OpenID provider (django-oauth-toolkit in a second process, tests/sso/provider),
without a browser: the portal's side through Django's test client, the member's side at the provider through
requests. The whole redirect flow, PKCE, members made and kept in line with the claims, sign-out at the provider."""
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages

from reservations.models import MemberGroup
from reservations.sso.oidc import groups_from, staff_from
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
START = "/accounts/oidc/start/"


class Member:
    """A browser's two halves: the portal's cookies (Django's test client) and the provider's (requests)."""

    def __init__(self, client, provider):
        self.client, self.provider, self.idp = client, provider, requests.Session()

    def sign_in(self, username, password=None):
        """Through the whole flow: portal -> provider's authorize -> its sign-in page -> back to the portal's callback."""
        start = self.client.get(START)
        assert start.status_code == 302, start
        page = self.idp.get(start["Location"], timeout=10)  # the provider sends an unknown browser to its sign-in page
        assert "/login/" in page.url, page.url
        form = {"username": username, "password": password or f"{username}-idp",
                "csrfmiddlewaretoken": self.idp.cookies["provider_csrftoken"], "next": parse_qs(urlsplit(page.url).query)["next"][0]}
        signed_in = self.idp.post(page.url, data=form, allow_redirects=False, timeout=10)
        assert signed_in.status_code == 302, signed_in.text[:500]
        return self.back_to_portal(self.provider.url + signed_in.headers["Location"])

    def back_to_portal(self, authorize_url):
        authorized = self.idp.get(authorize_url, allow_redirects=False, timeout=10)
        callback = authorized.headers["Location"]
        assert callback.startswith("http://testserver/accounts/oidc/callback/"), callback
        return self.client.get(callback.removeprefix("http://testserver"))

    def signed_in_as(self):
        user_id = self.client.session.get("_auth_user_id")
        return get_user_model().objects.select_related("profile__group").get(pk=user_id) if user_id else None


@pytest.fixture
def member(client, start_provider):
    return Member(client, start_provider())


def said(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_the_first_sign_in_makes_the_member_from_the_claims(member, settings):
    settings.OIDC_GROUP_MAP = {"phd": "PhD students"}
    phd = MemberGroup.objects.create(name="PhD students")

    response = member.sign_in("olivia")

    assert response.status_code == 302 and response["Location"] == "/"
    olivia = member.signed_in_as()
    assert (olivia.username, olivia.email, olivia.first_name, olivia.last_name) == ("olivia", "olivia@lab.example", "Olivia", "Okafor")
    assert olivia.is_staff and olivia.profile.group == phd and olivia.profile.unix_username == "olivia"
    assert not olivia.has_usable_password()


def test_staff_and_the_group_follow_the_provider_on_each_sign_in(member):
    students = MemberGroup.objects.create(name="students")
    phd = MemberGroup.objects.create(name="phd")
    alice = UserFactory(username="a.liddell", email="Alice@Lab.example", is_staff=True)
    alice.profile.group = phd
    alice.profile.save()

    member.sign_in("alice")

    alice = member.signed_in_as()
    assert alice.username == "a.liddell"  # found by e-mail, whatever the case: the provider's user name is not taken over
    assert not alice.is_staff and alice.profile.group == students


def test_the_authorization_request_carries_pkce_a_nonce_and_state(member):
    location = member.client.get(START, {"next": "/mine/"})["Location"]

    query = parse_qs(urlsplit(location).query)
    assert location.startswith(member.provider.url + "/o/authorize/")
    assert query["response_type"] == ["code"] and query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43 and query["nonce"][0] and query["state"][0]
    assert query["scope"] == ["openid email profile"]


def test_the_member_lands_where_they_were_going(member):
    start = member.client.get(START, {"next": "/mine/"})
    page = member.idp.get(start["Location"], timeout=10)
    form = {"username": "alice", "password": "alice-idp", "csrfmiddlewaretoken": member.idp.cookies["provider_csrftoken"],
            "next": parse_qs(urlsplit(page.url).query)["next"][0]}
    signed_in = member.idp.post(page.url, data=form, allow_redirects=False, timeout=10)

    assert member.back_to_portal(member.provider.url + signed_in.headers["Location"])["Location"] == "/mine/"


def test_an_address_the_provider_has_not_verified_is_refused(member):
    response = member.sign_in("unverified")

    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert member.signed_in_as() is None
    assert said(response) == ["Test IdP has not verified the e-mail address of your account; verify it there, then sign in again."]
    assert not get_user_model().objects.filter(username="unverified").exists()


def test_a_user_name_taken_by_an_account_with_another_address_is_refused(member):
    UserFactory(username="alice", email="someone.else@lab.example")

    response = member.sign_in("alice")

    assert member.signed_in_as() is None
    assert "labres already has an account named alice" in said(response)[0]


def test_sign_out_ends_the_session_at_the_provider_too(member):
    member.sign_in("alice")

    out = member.client.post("/accounts/logout/")

    assert member.signed_in_as() is None
    end = urlsplit(out["Location"])
    assert f"{end.scheme}://{end.netloc}{end.path}" == member.provider.url + "/o/logout/"
    query = parse_qs(end.query)
    assert query["post_logout_redirect_uri"] == ["http://testserver/accounts/login/"] and query["id_token_hint"][0]
    back = member.idp.get(out["Location"], allow_redirects=False, timeout=10)
    assert back.headers["Location"] == "http://testserver/accounts/login/"
    # Signed out there as well: the next sign-in asks for the provider's password again.
    again = member.idp.get(member.client.get(START)["Location"], timeout=10)
    assert "/login/" in again.url


def test_a_provider_out_of_reach_is_said_on_the_sign_in_page(client, settings):
    from tests.sso.slapd import free_port

    settings.OIDC_ISSUER = f"http://127.0.0.1:{free_port()}/o"
    settings.OIDC_NAME = "Test IdP"
    settings.OIDC_TIMEOUT = 2

    response = client.get(START)

    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert said(response) == ["Test IdP cannot be reached just now; try again in a minute."]


def test_the_sign_in_page_offers_the_provider_beside_the_password_form(client, settings):
    settings.OIDC_ISSUER, settings.OIDC_NAME = "http://idp.invalid/realms/lab", "Lab Keycloak"

    page = client.get("/accounts/login/", {"next": "/mine/"}).content.decode()

    assert '<a class="btn btn-primary" href="/accounts/oidc/start/?next=/mine/">Sign in with Lab Keycloak</a>' in page
    assert 'name="password"' in page


def test_oidc_only_hides_the_password_form(client, settings):
    settings.OIDC_ISSUER, settings.OIDC_NAME, settings.OIDC_ONLY = "http://idp.invalid/realms/lab", "Lab Keycloak", True

    page = client.get("/accounts/login/").content.decode()

    assert "Sign in with Lab Keycloak" in page and 'name="password"' not in page


def test_without_oidc_the_sign_in_page_has_no_button_and_its_addresses_are_not_found(client):
    assert "Sign in with" not in client.get("/accounts/login/").content.decode()
    assert client.get(START).status_code == 404


def test_a_password_sign_in_beside_oidc_still_works(client, settings):
    settings.OIDC_ISSUER = "http://idp.invalid/realms/lab"  # never asked: a password sign-in does not reach the provider
    settings.AUTHENTICATION_BACKENDS = ["reservations.signin.LimitedModelBackend", "reservations.sso.oidc.OIDCBackend"]
    UserFactory(username="bob", password="bob-password")

    response = client.post("/accounts/login/", {"username": "bob", "password": "bob-password"})

    assert response.status_code == 302 and response["Location"] == "/"


# --- claim mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize("claim, value, wanted, staff", [
    ("groups", ["phd", "labres-staff"], "labres-staff", True),
    ("groups", ["phd"], "labres-staff", False),
    ("groups", None, "labres-staff", False),
    ("role", "labres-staff", "labres-staff", True),
    ("labres_staff", True, "", True),
    ("labres_staff", "false", "", False),
    ("labres_staff", None, "", False),
])
def test_the_staff_claim(settings, claim, value, wanted, staff):
    settings.OIDC_STAFF_CLAIM, settings.OIDC_STAFF_VALUE = claim, wanted

    assert staff_from({claim: value}) is staff


def test_without_a_staff_claim_the_staff_flag_is_left_alone(settings):
    settings.OIDC_STAFF_CLAIM = ""

    assert staff_from({"groups": ["labres-staff"]}) is None


def test_the_groups_claim_may_be_one_name_or_a_list(settings):
    settings.OIDC_GROUPS_CLAIM = "groups"

    assert groups_from({"groups": "phd"}) == ["phd"]
    assert groups_from({"groups": ["phd", "students"]}) == ["phd", "students"]
    assert groups_from({}) == []
    settings.OIDC_GROUPS_CLAIM = ""
    assert groups_from({"groups": ["phd"]}) is None
