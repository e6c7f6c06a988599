"""The waitlist under real concurrency: threads with their own connections match and claim at once."""
from datetime import timedelta

import pytest
from django.utils import timezone

from reservations import services
from reservations.services import waitlist
from reservations.models import Allocation, Booking, WaitlistEntry
from reservations.errors import OfferUnavailable
from tests.factories import ServerFactory, UserFactory
from tests.reservations.test_races import race

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.race]
H = timedelta(hours=1)
WORKERS = 8


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    """Matching runs only where the test says (no after-commit hand-over)."""
    monkeypatch.setattr(waitlist, "hand_to_worker", lambda **kwargs: None)


@pytest.fixture
def one_gpu_freed():
    """tiny has 2 GPUs, both held by bob; four members wait for one GPU each; then GPU 0 frees up
    without anyone matching yet (as when the after-commit task has not run)."""
    tiny = ServerFactory(name="tiny", gpus=2)
    bob = UserFactory(username="bob")
    now = timezone.now()
    held = services.create_booking(bob, start=now - timedelta(minutes=1), end=now + 2 * H, server=tiny, devices="0", now=now)
    services.create_booking(bob, start=now - timedelta(minutes=1), end=now + 2 * H, server=tiny, devices="1", now=now)
    members = [UserFactory(username=f"waiter{i}") for i in range(4)]
    for member in members:
        waitlist.join(member, server=tiny, gpus=1, length="1h")
    services.release_booking(held, by=bob)
    return tiny, members


def test_workers_matching_at_once_make_one_offer(one_gpu_freed):
    tiny, members = one_gpu_freed

    results = race([lambda: waitlist.match(server_id=tiny.pk) for _ in range(WORKERS)])

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(len(r) for r in results) == 1
    [offered] = WaitlistEntry.objects.filter(state="offered")
    assert (offered.user, offered.offered_devices) == (members[0], "0")


def test_two_claims_racing_book_once(one_gpu_freed):
    tiny, members = one_gpu_freed
    waitlist.match(server_id=tiny.pk)
    entry = WaitlistEntry.objects.get(state="offered")
    owner, token = entry.user, entry.token

    results = race([lambda: waitlist.claim(entry, by=owner, token=token) for _ in range(WORKERS)])

    booked = [r for r in results if isinstance(r, Booking)]
    refused = [r for r in results if isinstance(r, OfferUnavailable)]
    assert len(booked) == 1 and len(refused) == WORKERS - 1, results
    assert Booking.objects.filter(user=owner).count() == 1
    assert Allocation.objects.filter(booking__user=owner, active=True).count() == 1
    entry.refresh_from_db()
    assert (entry.state, entry.booking_id) == ("claimed", booked[0].pk)
