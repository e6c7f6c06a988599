"""labres.celery.enqueue_after_commit: the one way work is handed to a worker after a change."""
import pytest

from labres import celery
from labres.celery import enqueue_after_commit, wait_for_hand_overs
from notifications.tasks import deliver
from reservations.tasks import match_waitlist, sync_calendars

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(celery, "send_task_once", lambda task, args, kwargs=None: calls.append((task.name, args, kwargs)))
    return calls


def test_nothing_is_handed_over_before_commit(sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enqueue_after_commit(match_waitlist, 1, None)
    assert wait_for_hand_overs()
    assert sent == []

    callbacks[0]()
    assert wait_for_hand_overs()
    assert sent == [("reservations.tasks.match_waitlist", [1, None], {})]


def test_calls_of_a_coalesced_task_waiting_together_travel_as_one_in_order(sent, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(celery, "HAND_OVER_LINGER", 1.0)  # generous: the calls below surely wait together
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_after_commit(deliver, ["created:b1"])
        enqueue_after_commit(match_waitlist, 1, None)
        enqueue_after_commit(deliver, ["changed:b2", "changed:b3"])
    assert wait_for_hand_overs(timeout=10)

    assert sent == [
        ("notifications.tasks.deliver", [["created:b1", "changed:b2", "changed:b3"]], {}),
        ("reservations.tasks.match_waitlist", [1, None], {}),
    ]


def test_a_task_without_a_fallback_is_logged_when_the_broker_is_down(monkeypatch, caplog, django_capture_on_commit_callbacks):
    def down(task, args, kwargs=None):
        raise ConnectionError("broker down")

    monkeypatch.setattr(celery, "send_task_once", down)
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_after_commit(sync_calendars)  # a task that names no fallback
    assert wait_for_hand_overs()

    assert "could not hand reservations.tasks.sync_calendars to a worker (broker down); its sweep will do it" in caplog.text
