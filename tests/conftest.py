"""Shared fixtures. Tests run against the database DATABASE_URL names (SQLite by default)."""
import os
from datetime import timedelta

import pytest
from django.utils import timezone

from reservations import services

from .factories import RoomFactory, ServerFactory, UserFactory

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_sessionstart(session):
    """In CI a service the run was pointed at must be there: fail loudly, never skip."""
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        import redis

        try:
            redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
        except redis.RedisError as error:
            raise pytest.UsageError(f"REDIS_URL={redis_url} is set but Redis does not answer: {error}") from None


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2 costs most of a second per user; tests are not about password strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache (sign-in counters, heartbeats)."""
    from django.core.cache import cache

    from reservations import fairuse

    cache.clear()
    fairuse.forget()  # a limit an earlier test made (and rolled back) is not kept


@pytest.fixture(autouse=True)
def outbox_stays_in_the_process(request, monkeypatch):
    """Outbox rows a test queues are not handed to a Celery broker after commit (no worker would
    consume them, and a later test's real worker would find them); tests send them with the
    outbox's sweep. A test marked `hands_to_worker` keeps the real hand-over."""
    if "hands_to_worker" not in request.keywords:
        monkeypatch.setattr("notifications.outbox.hand_to_worker", lambda keys: None)
        monkeypatch.setattr("notifications.outbox.hand_over_soon", lambda keys: None)


@pytest.fixture
def db_vendor():
    from django.db import connection

    return connection.vendor


@pytest.fixture
def later():
    """Tomorrow at 10:00 in the lab's zone: 10 to 24 hours ahead, so bookings near it never start in
    the past, and a span of a few hours stays within one day whatever the clock says (texts such as
    'Tue 24 Nov 10:00–12:00' name the day once)."""
    return timezone.localtime(timezone.now() + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)


@pytest.fixture
def alice(db):
    return UserFactory(username="alice", first_name="Alice", last_name="Liddell")


@pytest.fixture
def bob(db):
    return UserFactory(username="bob")


@pytest.fixture
def staff(db):
    return UserFactory(username="stella", is_staff=True)


@pytest.fixture
def root(db):
    """A superuser, for the admin pages."""
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(client, root):
    """The test client signed in as `root`."""
    client.force_login(root)
    return client


@pytest.fixture
def thalys(db):
    return ServerFactory(name="thalys", gpus=8)


@pytest.fixture
def room(db):
    return RoomFactory(name="Lab 2")


@pytest.fixture
def book(db):
    """book(user, start, hours=1, **target) books through the service layer."""

    def book(user, start, hours=1, purpose="work", **target):
        return services.create_booking(user, start=start, end=start + timedelta(hours=hours), purpose=purpose, **target)

    return book
