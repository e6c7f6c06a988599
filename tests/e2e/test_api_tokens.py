"""The profile page's API tokens in a real browser: a key is shown once, and a reload makes no second token."""
import pytest
from playwright.sync_api import expect

from reservations.models import ApiToken
from tests.factories import UserFactory

from .conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "token-pass-42"


@pytest.fixture
def dana(db):
    user = UserFactory(username="dana")
    user.set_password(PASSWORD)
    user.save()
    return user


def test_a_reload_after_creating_a_token_makes_no_second_one_and_hides_the_key(browse, dana):
    page = browse()
    sign_in(page, "dana", PASSWORD)
    page.goto("/profile/")

    page.get_by_label("Token name").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    key = page.locator("#new-key").inner_text()
    page.reload()

    tokens = ApiToken.objects.filter(user=dana)
    assert tokens.count() == 1 and tokens.get().key_hash == ApiToken.hash(key)
    expect(page.locator("#new-key")).to_have_count(0)
    expect(page.get_by_text(key)).to_have_count(0)
    expect(page.locator("section[aria-labelledby=tokens-h] tbody tr")).to_have_count(1)
