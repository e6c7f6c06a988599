"""Single sign-on in Debian's Chromium: the whole OpenID Connect redirect flow (the portal's sign-in page, the
provider's in a second process, tests/sso/provider, back signed in); a token made on the profile page for the
CLI and scripts; sign-out that ends the provider's session too."""
import pytest
import requests
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from reservations.models import MemberGroup
from tests.sso.conftest import provider_files, start_provider  # noqa: F401 -- the OpenID provider (a second process)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_member_signs_in_through_the_provider_makes_a_token_and_signs_out_there_too(browse, live_server, start_provider):  # noqa: F811
    provider = start_provider(live_server.url)
    phd = MemberGroup.objects.create(name="phd")
    page = browse()

    page.goto("/accounts/login/?next=/profile/")
    page.get_by_role("link", name="Sign in with Test IdP").click()
    page.wait_for_url(f"{provider.url}/login/**")
    page.get_by_label("IdP user name").fill("olivia")
    page.get_by_label("IdP password").fill("olivia-idp")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{live_server.url}/profile/")

    olivia = get_user_model().objects.select_related("profile").get(username="olivia")
    assert olivia.is_staff and olivia.profile.group == phd and olivia.email == "olivia@lab.example"
    page.get_by_label("Token name").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    key = page.locator("#new-key").inner_text()
    me = requests.get(f"{live_server.url}/api/v1/me/", headers={"Authorization": f"Token {key}"}, timeout=10)
    assert me.status_code == 200 and me.json()["username"] == "olivia"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{live_server.url}/accounts/login/")
    page.get_by_role("link", name="Sign in with Test IdP").click()
    expect(page.get_by_label("IdP password")).to_be_visible()  # the provider asks again: its session ended too
