"""The waitlist in the API: join, list, withdraw, claim, and each refusal in the one error shape."""
from datetime import timedelta

import pytest
from django.utils import timezone

from reservations import services
from reservations.services import waitlist
from reservations.models import Booking, WaitlistEntry

from ..factories import ServerFactory
from .conftest import error_of

H = timedelta(hours=1)
URL = "/api/v1/waitlist/"


@pytest.fixture(autouse=True)
def matched_at_once(monkeypatch):
    monkeypatch.setattr(waitlist, "hand_to_worker", lambda **kw: waitlist.match(**kw))


@pytest.fixture
def tiny(db):
    return ServerFactory(name="tiny", gpus=2)


@pytest.fixture
def busy(bob, tiny):
    """bob holds both GPUs of tiny from a minute ago for two hours."""
    now = timezone.now()
    return services.create_booking(bob, start=now - timedelta(minutes=1), end=now + 2 * H, server=tiny, devices="0-1", now=now)


def test_joining_answers_the_entry_with_its_place(as_alice, busy):
    response = as_alice.post(URL, {"server": "tiny", "gpus": 1, "length": "2h", "purpose": "eval"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["what"], body["length"], body["state"], body["position"], body["claim_token"]) == ("1 GPU on tiny", "2h", "waiting", 1, None)
    assert body["not_after"].endswith("Z")


def test_joining_says_which_channels_will_tell_the_member(as_alice, alice, busy):
    alice.email = ""
    alice.save()

    body = as_alice.post(URL, {"server": "tiny", "gpus": 1, "length": "2h"}, format="json").json()

    assert body["told_by"] == []
    assert body["told"].startswith("Nobody will tell you when it is free: labres has no e-mail address and no Slack link for you")


def test_joining_names_the_e_mail_that_will_tell(as_alice, alice, busy):
    body = as_alice.post(URL, {"server": "tiny", "gpus": 1, "length": "2h"}, format="json").json()

    assert (body["told_by"], body["told"]) == (["email"], f"We will tell you by e-mail to {alice.email} as soon as it is free.")


def test_a_wait_beyond_the_members_limits_answers_409_with_the_limit(as_alice, alice, busy):
    from reservations.models import Limit

    Limit.objects.create(user=alice, kind=Limit.Kind.MAX_GPUS, number=1)
    response = as_alice.post(URL, {"server": "tiny", "gpus": 2, "length": "1h"}, format="json")
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert (error["code"], error["limit"]["kind"]) == ("limit_exceeded", "max_gpus")
    assert "ask to wait for 1 or fewer" in error["message"]
    assert not WaitlistEntry.objects.exists()


def test_the_list_shows_only_my_entries(as_alice, as_bob, alice, bob, busy, tiny):
    waitlist.join(alice, server=tiny, gpus=1, length="1h")
    waitlist.join(bob, server=tiny, gpus=2, length="1h")
    body = as_alice.get(URL).json()
    assert [(e["user"], e["position"]) for e in body] == [("alice", 1)]


@pytest.mark.parametrize("payload, field", [
    ({"server": "tiny", "gpus": 5, "length": "1h"}, "gpus"),
    ({"server": "tiny", "gpus": 1, "length": "forever"}, "length"),
    ({"server": "tiny", "gpus": 1}, "length"),
    ({"server": "atlantis", "gpus": 1, "length": "1h"}, "server"),
    ({"gpus": 1, "length": "1h"}, "server"),
    ({"server": "tiny", "gpus": 1, "length": "1h", "not_after": "2001-01-01T00:00:00Z"}, "not_after"),
])
def test_bad_input_answers_400_naming_the_field(as_alice, tiny, payload, field):
    error = error_of(as_alice.post(URL, payload, format="json"), 400, "invalid")
    assert field in error["fields"]
    assert not WaitlistEntry.objects.exists()


def test_withdrawing(as_alice, as_bob, alice, busy, tiny):
    entry = waitlist.join(alice, server=tiny, gpus=1, length="1h")
    error_of(as_bob.delete(f"{URL}{entry.pk}/"), 403, "forbidden")
    assert as_alice.delete(f"{URL}{entry.pk}/").status_code == 204
    error_of(as_alice.delete(f"{URL}{entry.pk}/"), 400, "invalid")
    error_of(as_alice.delete(f"{URL}999999/"), 404, "not_found")


def test_claiming_an_offer_books_it_once(as_alice, alice, bob, busy, tiny):
    entry = waitlist.join(alice, server=tiny, gpus=2, length="1h")
    services.release_booking(busy, by=bob)
    waitlist.match(server_id=tiny.pk)
    token = as_alice.get(URL).json()[0]["claim_token"]
    assert token

    response = as_alice.post(f"{URL}{entry.pk}/claim/", {"token": token}, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["server"], response.json()["devices"]) == ("tiny", "0-1")
    error = error_of(as_alice.post(f"{URL}{entry.pk}/claim/", {}, format="json"), 409, "conflict")
    assert "claimed already" in error["message"]
    assert Booking.objects.filter(user=alice).count() == 1


def test_claiming_someone_elses_offer_is_forbidden(as_bob, alice, bob, busy, tiny):
    entry = waitlist.join(alice, server=tiny, gpus=1, length="1h")
    services.release_booking(busy, by=bob)
    waitlist.match(server_id=tiny.pk)
    entry.refresh_from_db()
    error_of(as_bob.post(f"{URL}{entry.pk}/claim/", {"token": entry.token}, format="json"), 403, "forbidden")


def test_claiming_without_an_offer_answers_409(as_alice, alice, busy, tiny):
    entry = waitlist.join(alice, server=tiny, gpus=1, length="1h")
    error = error_of(as_alice.post(f"{URL}{entry.pk}/claim/", {}, format="json"), 409, "conflict")
    assert "no open offer (it is waiting)" in error["message"]


def test_the_waitlist_needs_a_token(anon):
    error_of(anon.get(URL), 401, "unauthenticated")
