import pytest

from reservations.models import ApiToken
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(db):
    return UserFactory(username="dana", password="right-password")


def test_sign_in_is_refused_after_too_many_failures(client, member, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 3
    for _ in range(3):
        assert client.post("/accounts/login/", {"username": "dana", "password": "wrong"}).status_code == 200

    locked = client.post("/accounts/login/", {"username": "dana", "password": "right-password"})

    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_sign_out_ends_the_session(client, member):
    client.force_login(member)

    client.post("/accounts/logout/")

    assert client.get("/").status_code == 302


def test_profile_sets_display_name_and_time_zone(client, member):
    client.force_login(member)

    response = client.post("/profile/", {"display_name": "Dana S.", "time_zone": "Europe/Berlin"})

    assert response.status_code == 302
    member.profile.refresh_from_db()
    assert (member.profile.display_name, member.profile.time_zone) == ("Dana S.", "Europe/Berlin")
    assert "Europe/Berlin" in client.get("/").content.decode()


def test_profile_sets_the_unix_user_name(client, member):
    client.force_login(member)

    response = client.post("/profile/", {"display_name": "", "time_zone": "", "unix_username": "d.smith"})

    assert response.status_code == 302
    member.profile.refresh_from_db()
    assert member.profile.unix_username == "d.smith"


@pytest.mark.parametrize(
    "taken, given, message",
    [
        ("", "Dana Smith", "Write the user name as on the GPU hosts, e.g. alice or a.liddell."),
        ("dana", "dana", "Another member already has this unix user name."),
    ],
)
def test_profile_refuses_a_bad_or_taken_unix_user_name(client, member, bob, taken, given, message):
    bob.profile.unix_username = taken
    bob.profile.save()
    client.force_login(member)

    response = client.post("/profile/", {"display_name": "", "time_zone": "", "unix_username": given})

    assert response.status_code == 400
    assert message in response.content.decode()
    member.profile.refresh_from_db()
    assert member.profile.unix_username == ""


def test_profile_refuses_an_unknown_time_zone(client, member):
    client.force_login(member)

    response = client.post("/profile/", {"display_name": "", "time_zone": "Mars/Olympus"})

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


def test_a_new_api_token_is_shown_once_and_stored_hashed(client, member):
    client.force_login(member)

    page = client.post("/profile/tokens/", {"name": "laptop"}, follow=True).content.decode()

    token = ApiToken.objects.get(user=member)
    key = page.split('id="new-key">')[1].split("<")[0]
    assert token.key_hash == ApiToken.hash(key) and key not in token.key_hash
    assert key.startswith(token.prefix)
    assert key not in client.get("/profile/").content.decode()


def test_creating_a_token_redirects_so_a_reload_makes_no_second_one(client, member):
    client.force_login(member)

    created = client.post("/profile/tokens/", {"name": "laptop"})
    shown = client.get(created["Location"])
    reloaded = client.get(created["Location"])

    assert created.status_code == 302
    assert created["Location"].startswith("/profile/")
    key = shown.content.decode().split('id="new-key">')[1].split("<")[0]
    assert ApiToken.objects.get(user=member).key_hash == ApiToken.hash(key)
    assert "no-store" in shown["Cache-Control"]
    assert 'id="new-key"' not in reloaded.content.decode() and key not in reloaded.content.decode()
    assert ApiToken.objects.filter(user=member).count() == 1


def test_a_token_needs_a_name(client, member):
    client.force_login(member)

    response = client.post("/profile/tokens/", {"name": ""})

    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_members_revoke_their_own_tokens_only(client, member):
    theirs, _ = ApiToken.issue(UserFactory(username="erin"), "erin's")
    mine, _ = ApiToken.issue(member, "mine")
    client.force_login(member)

    assert client.post(f"/profile/tokens/{theirs.pk}/revoke/").status_code == 404
    assert client.post(f"/profile/tokens/{mine.pk}/revoke/").status_code == 302
    assert list(ApiToken.objects.values_list("name", flat=True)) == ["erin's"]


def test_one_address_may_fail_for_many_members_before_it_is_refused(client, member, settings):
    # A lab behind one NAT address must not lock everyone out after one person's typos.
    settings.LOGIN_ATTEMPTS_LIMIT = 2
    for name in ["x1", "x2", "x3", "x4", "x5"]:
        client.post("/accounts/login/", {"username": name, "password": "wrong"})

    response = client.post("/accounts/login/", {"username": "dana", "password": "right-password"})

    assert response.status_code == 302
