"""Signing in against a real LDAP server (Debian's slapd, tests/sso/slapd.py): members made and kept in line
with the directory on each sign-in, the guessing limits on every directory password, a disabled account, TLS."""
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from reservations.models import MemberGroup, Profile
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
LOGIN = "/accounts/login/"
LAB = "192.0.2.10"


def sign_in(username, password, client=None):
    return (client or Client()).post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=LAB)


def member(username):
    return get_user_model().objects.select_related("profile", "profile__group").get(username=username)


def test_a_member_signs_in_with_the_directory_password_and_is_made_from_the_entry(directory):
    response = sign_in("alice", "alice-password")

    assert response.status_code == 302 and response["Location"] == "/"
    alice = member("alice")
    assert (alice.first_name, alice.last_name, alice.email) == ("Alice", "Liddell", "alice@lab.example")
    assert alice.profile.unix_username == "alice"
    assert not alice.is_staff and not alice.has_usable_password()


def test_staff_and_the_primary_group_follow_the_directory_on_each_sign_in(directory, settings):
    settings.LDAP_GROUP_MAP = {"phd": "PhD students", "students": "Students"}
    phd = MemberGroup.objects.create(name="PhD students")
    MemberGroup.objects.create(name="Students")

    assert sign_in("olivia", "olivia-password").status_code == 302
    olivia = member("olivia")
    assert olivia.is_staff and olivia.profile.group == phd

    # A groupOfNames needs a member: alice takes olivia's place in both groups, then gives it back.
    directory.set_members("labres-staff", "alice")
    directory.set_members("phd", "alice")
    try:
        assert sign_in("olivia", "olivia-password").status_code == 302
        olivia = member("olivia")
        assert not olivia.is_staff and olivia.profile.group is None
    finally:
        directory.set_members("labres-staff", "olivia")
        directory.set_members("phd", "olivia")


def test_without_a_map_a_member_group_named_like_a_directory_group_is_chosen(directory):
    students = MemberGroup.objects.create(name="Students")

    sign_in("alice", "alice-password")

    assert member("alice").profile.group == students


def test_a_wrong_directory_password_is_counted_by_the_sign_in_limits(directory, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 2

    assert [sign_in("alice", "wrong").status_code for _ in range(2)] == [200, 200]
    refused = sign_in("Alice", "alice-password")  # the directory's names ignore case: one account, one counter

    assert refused.status_code == 429
    assert "Too many failed sign-ins for this account" in refused.content.decode()
    assert not get_user_model().objects.filter(username="alice").exists()  # the right password was not even tried


def test_the_token_endpoint_takes_directory_passwords_under_the_same_limits(directory, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 1
    api = APIClient()

    made = api.post("/api/v1/auth/token/", {"username": "olivia", "password": "olivia-password"}, REMOTE_ADDR=LAB)
    wrong = api.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR=LAB)
    refused = api.post("/api/v1/auth/token/", {"username": "alice", "password": "alice-password"}, REMOTE_ADDR=LAB)

    assert made.status_code == 201 and made.json()["token"]
    assert (wrong.status_code, refused.status_code) == (400, 429)


def test_a_disabled_active_directory_account_cannot_sign_in(directory, settings):
    # The README's Active Directory filter, on slapd with AD's sAMAccountName and userAccountControl.
    settings.LDAP_USER_FILTER = "(&(sAMAccountName=%(user)s)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
    settings.LDAP_UNIX_USERNAME_ATTR = "sAMAccountName"

    assert sign_in("dave", "dave-password").status_code == 200
    assert sign_in("alice", "alice-password").status_code == 302
    assert not get_user_model().objects.filter(username="dave").exists()
    assert member("alice").profile.unix_username == "alice"


def test_a_member_the_directory_knows_cannot_fall_back_on_an_old_local_password(directory):
    UserFactory(username="alice", password="old-local-password")

    assert sign_in("alice", "old-local-password").status_code == 200
    assert sign_in("alice", "alice-password").status_code == 302
    assert not member("alice").has_usable_password()


def test_a_local_account_the_directory_does_not_know_keeps_its_password(directory):
    UserFactory(username="root", password="break-glass", is_staff=True)

    assert sign_in("root", "break-glass").status_code == 302
    assert member("root").is_staff  # the directory does not manage accounts it does not know


def test_a_unix_user_name_another_member_has_is_not_taken(directory):
    Profile.objects.update_or_create(user=UserFactory(username="alice2"), defaults={"unix_username": "alice"})

    assert sign_in("alice", "alice-password").status_code == 302
    assert member("alice").profile.unix_username == ""


@pytest.mark.parametrize("how", ["ldaps", "starttls"])
def test_tls_with_the_lab_ca(directory, settings, how):
    settings.LDAP_CA_FILE = directory.ca_file
    if how == "ldaps":
        settings.LDAP_SERVER_URI = directory.tls_url
    else:
        settings.LDAP_START_TLS = True

    assert sign_in("alice", "alice-password").status_code == 302


def test_tls_refuses_a_server_whose_certificate_the_ca_file_did_not_sign(directory, settings, tmp_path):
    from .slapd import make_certificates

    make_certificates(tmp_path)  # another CA
    settings.LDAP_SERVER_URI = directory.tls_url
    settings.LDAP_CA_FILE = str(tmp_path / "ca.pem")

    assert sign_in("alice", "alice-password").status_code == 200
    assert not get_user_model().objects.filter(username="alice").exists()


def test_with_the_directory_out_of_reach_local_accounts_still_sign_in_and_members_are_refused(directory, settings):
    from .slapd import free_port

    settings.LDAP_SERVER_URI = f"ldap://127.0.0.1:{free_port()}"  # nothing listens there
    UserFactory(username="root", password="break-glass", is_staff=True)
    UserFactory(username="olivia", password=None)  # signed in through the directory before: no local password

    assert sign_in("root", "break-glass").status_code == 302
    assert sign_in("olivia", "olivia-password").status_code == 200
