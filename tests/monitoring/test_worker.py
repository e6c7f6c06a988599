"""A real Celery worker process, on the broker the settings name (a local folder, or Redis)."""
import os
import signal
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.cache import cache

from monitoring.tasks import HEARTBEAT_KEY, heartbeat
from tests.workers import wait_for

pytestmark = pytest.mark.celery


@pytest.fixture
def start_worker():
    workers = []

    def start():
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "labres", "worker", "--pool", "solo",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
            cwd=settings.BASE_DIR,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


def test_a_task_sent_while_no_worker_runs_is_done_once_one_starts(start_worker):
    cache.delete(HEARTBEAT_KEY)
    heartbeat.delay()  # queued on the broker; nothing consumes it yet

    worker = start_worker()

    done = wait_for(lambda: cache.get(HEARTBEAT_KEY) is not None)
    if not done:
        worker.kill()
        pytest.fail("the worker did not run the queued task:\n" + worker.communicate()[0][-3000:])
    assert worker.poll() is None, "the worker exited"
