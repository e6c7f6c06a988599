"""Real Celery worker processes for integration tests, on the test's database and the broker the
settings name (Redis when REDIS_URL is set, else the local folder)."""
import os
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from labres.celery import app

CELERY_WORKER = [sys.executable, "-m", "celery", "-A", "labres", "worker", "--pool", "solo",
                 "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"]


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def worker_database_url():
    """A DATABASE_URL naming the database this test runs on, for the worker process."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def purge(queues):
    """Empty the queues, so a message left by an earlier run cannot stand in for this test's."""
    with app.connection_for_write() as conn:
        for queue in queues:
            conn.default_channel.queue_purge(queue)


def waiting_in(queue):
    """Messages waiting in `queue` on the broker."""
    with app.connection_for_write() as conn:
        return conn.default_channel.queue_declare(queue=queue, passive=False).message_count


class WorkerProcess:
    """A Celery worker subprocess (plain, or `manage.py host_agent`) and everything it has printed so far."""

    def __init__(self, command, *, name="worker", **env):
        self.name = name
        self.process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=dict(os.environ, DATABASE_URL=worker_database_url(), **env),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self):
        return "".join(self.lines)

    def wait_ready(self):
        if not wait_for(lambda: " ready." in self.output or self.process.poll() is not None):
            pytest.fail(f"the {self.name} did not become ready:\n" + self.output[-3000:])
        assert self.process.poll() is None, f"the {self.name} exited:\n" + self.output[-3000:]

    def run_as_beat(self, entry):
        """Send one of beat's entries through the broker, as beat does, and wait until the worker has run it."""
        schedule = settings.CELERY_BEAT_SCHEDULE[entry]
        result = app.send_task(schedule["task"], **schedule.get("options", {}))
        if not wait_for(lambda: f"{schedule['task']}[{result.id}] succeeded" in self.output, timeout=30):
            pytest.fail(f"the {self.name} did not run {entry}:\n" + self.output[-3000:])

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
