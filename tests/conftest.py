"""Shared fixtures. Tests run against the database DATABASE_URL names (SQLite by default)."""
import os
import time
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from reservations import services

from .clock import OFFSET_VARIABLE, SITE, suite_moment
from .factories import RoomFactory, ServerFactory, UserFactory
from .workers import CELERY_WORKER, WorkerProcess, purge

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


def pytest_report_header(config):
    moment = suite_moment(settings.TIME_ZONE)
    return f"clock: each test starts at {moment.isoformat()} (LABRES_TEST_NOW)" if moment else "clock: the wall clock"


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """Each test starts at LABRES_TEST_NOW when it is set, and so do the processes it starts (tests/clock.py)."""
    moment = suite_moment(settings.TIME_ZONE)
    if moment is None:
        yield timezone.now()
        return
    monkeypatch.setenv(OFFSET_VARIABLE, repr(moment.timestamp() - time.time()))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(SITE), os.environ.get("PYTHONPATH")])))
    # A timestamp, not the aware datetime: time-machine would also set TZ from a ZoneInfo.
    with time_machine.travel(moment.timestamp(), tick=True):
        yield timezone.now()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2 costs most of a second per user; tests are not about password strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache (sign-in counters, heartbeats)."""
    from django.core.cache import cache

    from reservations.services import fairuse

    cache.clear()
    fairuse.forget()  # a limit an earlier test made (and rolled back) is not kept


@pytest.fixture(autouse=True)
def outbox_stays_in_the_process(request, monkeypatch):
    """Outbox rows a test queues are not handed to a Celery broker after commit (no worker would
    consume them, and a later test's real worker would find them); tests send them with the
    outbox's sweep. A test marked `hands_to_worker` keeps the real hand-over."""
    if "hands_to_worker" not in request.keywords:
        monkeypatch.setattr("notifications.outbox.deliver_after_commit", lambda keys: None)


@pytest.fixture
def db_vendor():
    from django.db import connection

    return connection.vendor


@pytest.fixture
def later(clock):
    """The first of today 10:00, today 16:00 and tomorrow 10:00 (lab's zone) that is at least 2 hours
    ahead: so bookings near it never start in the past, it is within 20 hours (inside any one-day
    window, such as what `labres status` calls next), and a span of up to 7 hours stays within one day
    (texts such as 'Tue 24 Nov 10:00–12:00' name the day once), whatever the hour."""
    return upcoming_anchor(timezone.localtime(clock))


def upcoming_anchor(now):
    today = now.replace(minute=0, second=0, microsecond=0)
    for anchor in (today.replace(hour=10), today.replace(hour=16), (today + timedelta(days=1)).replace(hour=10)):
        anchor = timezone.make_aware(anchor.replace(tzinfo=None), now.tzinfo)  # the wall-clock hour, across DST
        if anchor - now >= timedelta(hours=2):
            return anchor
    raise AssertionError("unreachable: tomorrow 10:00 is always more than 2 hours ahead")


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


@pytest.fixture
def start_worker():
    """start_worker(**env) starts a real Celery worker (solo pool) on the portal's queues and waits until it is ready."""
    queues = [settings.CELERY_TASK_DEFAULT_QUEUE, settings.PERIODIC_QUEUE]
    purge(queues)  # a message left by an earlier run must not stand in for this test's
    workers = []

    def start(**env):
        worker = WorkerProcess([*CELERY_WORKER, "--queues", ",".join(queues)], **env)
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()
    purge(queues)
