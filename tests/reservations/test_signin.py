"""The password-guessing limits (reservations/signin.py): web sign-in, admin sign-in, the API token
endpoint and password reset share them; counted atomically, by the name Django authenticates, by
the address only trusted proxies may rewrite; the guesser is locked, not the member."""
import threading

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core import mail
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
LAB = "192.0.2.10"  # the lab's NAT address
ELSEWHERE = "198.51.100.66"
TOKEN_URL = "/api/v1/auth/token/"


class CountingHasher(MD5PasswordHasher):
    """MD5 (fast), counting the passwords it checks: the number the limits bound."""

    algorithm = "counting_md5"
    checks = 0
    lock = threading.Lock()

    def verify(self, password, encoded):
        with CountingHasher.lock:
            CountingHasher.checks += 1
        return super().verify(password, encoded)


@pytest.fixture
def dana(db):
    return UserFactory(username="dana", email="dana@example.org", is_staff=True, is_superuser=True, password="right-password")


@pytest.fixture
def tuser4(db):
    return UserFactory(username="tuser4", password="right-password")


def sign_in(client, username, password, address=LAB, url="/accounts/login/"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def ask_token(username, password, address=LAB, **headers):
    return APIClient().post(TOKEN_URL, {"username": username, "password": password}, REMOTE_ADDR=address, **headers)


def fail(times, username="dana", address=LAB, url="/accounts/login/"):
    return [sign_in(Client(), username, "wrong", address, url).status_code for _ in range(times)]


# --- one limit for every surface ----------------------------------------------------------


def test_the_token_endpoint_refuses_an_account_after_its_failures(dana, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 3
    codes = [ask_token("dana", "wrong").status_code for _ in range(3)]

    response = ask_token("dana", "right-password")

    assert codes == [400, 400, 400]
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert "Too many failed sign-ins for this account" in response.json()["error"]["message"]
    assert 0 < int(response["Retry-After"]) <= 15 * 60


def test_the_admin_sign_in_refuses_an_account_after_its_failures(dana, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 3
    client = Client()
    assert fail(3, url="/admin/login/") == [200, 200, 200]

    response = sign_in(client, "dana", "right-password", url="/admin/login/")

    assert response.status_code == 429
    assert "Too many failed sign-ins for this account" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_failures_on_one_surface_count_on_the_others(dana, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 3
    fail(1, url="/admin/login/")
    fail(1)
    ask_token("dana", "wrong")

    assert sign_in(Client(), "dana", "right-password").status_code == 429


def test_a_right_password_under_the_limit_signs_in_everywhere(dana, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 3
    fail(2)

    assert sign_in(Client(), "dana", "right-password").status_code == 302
    assert sign_in(Client(), "dana", "right-password", url="/admin/login/").status_code == 302
    assert ask_token("dana", "right-password").status_code == 201


# --- the name as Django authenticates it ---------------------------------------------------


def test_a_compatibility_spelling_of_a_locked_name_is_locked_too(tuser4, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 3
    fail(3, username="tuser4")

    web = sign_in(Client(), "ｔｕser4", "right-password")
    api = ask_token("ｔｕser4", "right-password")

    assert web.status_code == 429
    assert api.status_code == 429


def test_failures_under_a_compatibility_spelling_count_for_the_account(tuser4, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 3
    fail(3, username="ｔｕｓｅｒ４")

    assert sign_in(Client(), "tuser4", "right-password").status_code == 429


def test_the_api_signs_in_the_name_the_web_form_signs_in(tuser4):
    assert ask_token("ｔｕser4", "right-password").status_code == 201


# --- the client's address --------------------------------------------------------------------


def test_forged_forwarded_for_headers_do_not_reset_the_token_limit(db, settings):
    settings.API_THROTTLE_TOKEN = "10/minute"
    codes = [
        ask_token(f"nobody{n}", "wrong", HTTP_X_FORWARDED_FOR=f"10.{n}.0.1").status_code
        for n in range(12)
    ]

    assert codes == [400] * 10 + [429] * 2


def test_a_trusted_proxy_tells_clients_apart(db, settings):
    settings.API_THROTTLE_TOKEN = "2/minute"
    settings.TRUSTED_PROXIES = ["127.0.0.0/8"]
    behind_proxy = {"address": "127.0.0.1"}
    first = [ask_token(f"a{n}", "wrong", **behind_proxy, HTTP_X_FORWARDED_FOR="203.0.113.1").status_code for n in range(3)]
    second = ask_token("b", "wrong", **behind_proxy, HTTP_X_FORWARDED_FOR="203.0.113.2").status_code

    assert first == [400, 400, 429]
    assert second == 400


def test_a_trusted_proxy_counts_sign_in_failures_per_client(dana, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 1  # ten failures per address
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    for n in range(10):
        Client().post("/accounts/login/", {"username": f"x{n}", "password": "wrong"}, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=ELSEWHERE)

    other = Client().post("/accounts/login/", {"username": "dana", "password": "right-password"}, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=LAB)
    guesser = Client().post("/accounts/login/", {"username": "dana", "password": "right-password"}, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=ELSEWHERE)

    assert other.status_code == 302
    assert guesser.status_code == 429


# --- atomic counting --------------------------------------------------------------------------


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_racing_wrong_passwords_get_at_most_the_limit_of_checks(settings):
    settings.PASSWORD_HASHERS = ["tests.reservations.test_signin.CountingHasher"]
    settings.LOGIN_ATTEMPTS_LIMIT = 5
    UserFactory(username="erin", password="right-password")
    CountingHasher.checks = 0
    barrier = threading.Barrier(30)
    codes = []

    def guess(n):
        try:
            client = Client()
            barrier.wait(timeout=30)
            codes.append(sign_in(client, "erin", f"guess{n}").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(codes) == [200] * 5 + [429] * 25
    assert CountingHasher.checks == 5


# --- lock the guesser, not the member ----------------------------------------------------------


def test_made_up_names_from_the_lab_do_not_lock_out_a_member_who_signs_in_there(dana, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 5
    sign_in(Client(), "dana", "right-password")  # dana's usual address
    for n in range(60):
        sign_in(Client(), f"made-up-{n}", "wrong")

    assert sign_in(Client(), "dana", "right-password").status_code == 302


def test_an_address_over_its_limit_may_not_try_other_accounts(dana, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 5
    # The name is refused after 5 failures; the address counts all 50 tries, its limit.
    assert fail(50, username="made-up").count(200) == 5

    refused = sign_in(Client(), "dana", "right-password")
    from_home = sign_in(Client(), "dana", "right-password", address=ELSEWHERE)

    assert refused.status_code == 429
    assert "from your address" in refused.content.decode()
    assert from_home.status_code == 302


def test_guesses_from_elsewhere_do_not_lock_a_member_out_at_their_usual_address(dana, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 3
    sign_in(Client(), "dana", "right-password")
    fail(5, address=ELSEWHERE)

    assert sign_in(Client(), "dana", "right-password", address=ELSEWHERE).status_code == 429
    assert sign_in(Client(), "dana", "right-password").status_code == 302
    assert ask_token("dana", "right-password").status_code == 201


def test_a_familiar_address_still_gets_only_the_limit_of_failures(dana, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 3
    sign_in(Client(), "dana", "right-password")

    assert fail(4) == [200, 200, 200, 429]
    assert sign_in(Client(), "dana", "right-password").status_code == 429


def test_an_unknown_name_is_refused_like_a_real_one(dana, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 2
    real = fail(3, username="dana", address=ELSEWHERE)
    unknown = fail(3, username="nobody", address=ELSEWHERE)

    assert real == unknown == [200, 200, 429]


# --- password reset ----------------------------------------------------------------------------


def ask_reset(email, address=LAB):
    return Client().post("/accounts/password_reset/", {"email": email}, REMOTE_ADDR=address)


def test_password_reset_mails_one_account_at_most_the_limit(dana, settings):
    settings.PASSWORD_RESET_LIMIT = 3
    responses = [ask_reset(email) for email in ["dana@example.org", "DANA@example.org"] * 3]

    assert [r.status_code for r in responses] == [302] * 6
    assert {r["Location"] for r in responses} == {"/accounts/password_reset/done/"}
    assert len(mail.outbox) == 3


def test_password_reset_answers_the_same_for_an_address_without_an_account(dana, settings):
    settings.PASSWORD_RESET_LIMIT = 3
    known = [(r.status_code, r["Location"]) for r in (ask_reset("dana@example.org") for _ in range(5))]
    unknown = [(r.status_code, r["Location"]) for r in (ask_reset("nobody@example.org") for _ in range(5))]

    assert known == unknown


def test_password_reset_refuses_an_address_that_asks_too_often(dana, settings):
    settings.PASSWORD_RESET_LIMIT = 1  # ten requests per address
    for n in range(10):
        assert ask_reset(f"someone{n}@example.org").status_code == 302

    refused = ask_reset("dana@example.org")
    from_elsewhere = ask_reset("dana@example.org", address=ELSEWHERE)

    assert refused.status_code == 429
    assert "Too many password reset requests from your address" in refused.content.decode()
    assert from_elsewhere.status_code == 302
    assert len(mail.outbox) == 1


# --- password change ---------------------------------------------------------------------------


def test_changing_the_password_checks_the_old_one_under_the_limits(dana, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 3
    client = Client()
    client.force_login(dana)

    def change(old):
        data = {"old_password": old, "new_password1": "a new long passphrase", "new_password2": "a new long passphrase"}
        return client.post("/accounts/password_change/", data, REMOTE_ADDR=ELSEWHERE)

    codes = [change("wrong").status_code for _ in range(3)]
    refused = change("right-password")

    assert codes == [200, 200, 200]
    assert refused.status_code == 429
    assert "Too many failed sign-ins for this account" in refused.content.decode()
    dana.refresh_from_db()
    assert dana.check_password("right-password")
