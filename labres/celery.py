"""The Celery application: web, worker, beat and host agents all load this one.

And the one way work is handed to a worker after a change: enqueue_after_commit().
"""
import atexit
import logging
import os
import threading
import time
from queue import Empty, Queue

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labres.settings")

app = Celery("labres")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)

# A broker that is down must not hold up the change that asked for the work (the hand-over runs
# after commit, in the web process): one connection attempt, short socket timeouts, no retries.
HAND_OVER_TIMEOUT = 2  # seconds
# Under a burst of changes, one task per change costs the worker more than the work does: calls of
# a task marked `coalesce` handed over within this long of each other (seconds) travel as one
# (bench/notifications.py).
HAND_OVER_LINGER = 0.05
HAND_OVER_MOST = 20  # calls per hand-over at most: a task stays short, and beat's tasks get their turn
HAND_OVER_TRANSPORT_OPTIONS = {"max_retries": 0, "socket_connect_timeout": HAND_OVER_TIMEOUT, "socket_timeout": HAND_OVER_TIMEOUT}


def enqueue_after_commit(task, *args, **kwargs):
    """Hand task(*args, **kwargs) to a worker once the caller's transaction commits (at once outside one).

    From this process's hand-over thread, so the request that made the change answers without
    waiting for the broker. What the broker cannot take is never lost, only delayed: the task's
    `broker_down(error, args, kwargs)` says what happens instead (logged, for the periodic sweep that
    covers the task's work; or done in this process); without one, a warning is logged. The calls
    of a task marked `coalesce = True` (one list argument) waiting together are sent as one call.
    """
    from django.db import transaction

    transaction.on_commit(lambda: _hand_over.put(task, args, kwargs))


def hand_over_now(task, *args, **kwargs):
    """Send task(*args, **kwargs) to a worker now, in this thread, with the short timeouts; if the broker
    cannot take it, the task's `broker_down` (see enqueue_after_commit). Never raises."""
    try:
        send_task_once(task, list(args), kwargs)
    except Exception as error:  # the broker's failures are many: delay, lose nothing
        broker_down = getattr(task, "broker_down", None)
        if broker_down is None:
            logger.warning("could not hand %s to a worker (%s); its sweep will do it", task.name, error)
            return
        try:
            broker_down(error, args, kwargs)
        except Exception:
            logger.exception("%s: handling a broker that is down failed", task.name)


def send_task_once(task, args, kwargs=None):
    """Send a task with one connection attempt and short timeouts; raises if the broker is unreachable.

    Through Celery's own pool, a Redis that is down costs each caller about 6 s of connection
    retries, a host that drops packets the OS's connect timeout (minutes), and a Redis that
    accepts but does not answer, for ever. These pooled connections try once, with timeouts;
    kombu keeps one pool per broker URL and options.
    """
    from kombu.pools import connections

    if task.app.conf.task_always_eager:
        task.apply_async(args=args, kwargs=kwargs)
        return
    broker = task.app.connection_for_write(transport_options=HAND_OVER_TRANSPORT_OPTIONS)
    with connections[broker].acquire(block=True, timeout=HAND_OVER_TIMEOUT) as connection:
        connection.ensure_connection(max_retries=0)
        task.apply_async(args=args, kwargs=kwargs, connection=connection, retry=False)


class _HandOver:
    """One background thread per process that hands calls to the broker (hand_over_now), in the order
    they came. What a process exits before handing over, the sweeps find: the work is written down
    in the database already (outbox rows, waitlist entries) or is redone on request (Slack answers).
    """

    def __init__(self):
        self.waiting = Queue()
        self.thread = None
        self.pid = None
        self.started = threading.Lock()

    def put(self, task, args, kwargs):
        with self.started:
            if self.thread is None or not self.thread.is_alive() or self.pid != os.getpid():  # none yet, or forked
                self.waiting, self.pid = Queue(), os.getpid()
                self.thread = threading.Thread(target=self._run, args=(self.waiting,), name="hand-over", daemon=True)
                self.thread.start()
        self.waiting.put((task, args, kwargs))

    def _run(self, waiting):
        from django.db import connections

        while True:
            calls = [waiting.get()]
            while len(calls) < HAND_OVER_MOST:  # what comes within HAND_OVER_LINGER of the last goes along
                try:
                    calls.append(waiting.get(timeout=HAND_OVER_LINGER))
                except Empty:
                    break
            try:
                for task, args, kwargs in _coalesced(calls):
                    hand_over_now(task, *args, **kwargs)
            finally:
                connections.close_all()  # this thread's own, if a task ran here (eager mode, a fallback)
                for _ in calls:
                    waiting.task_done()

    def wait(self, timeout):
        """Wait up to `timeout` seconds for what was put so far to be handed over; True if it was."""
        deadline = time.monotonic() + timeout
        while self.waiting.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


def _coalesced(calls):
    """The calls in order, those of one task marked `coalesce` joined into its first (list arguments added up)."""
    out, joined = [], {}
    for task, args, kwargs in calls:
        if not getattr(task, "coalesce", False):
            out.append((task, args, kwargs))
        elif task.name in joined:
            joined[task.name].extend(args[0])
        else:
            joined[task.name] = list(args[0])
            out.append((task, (joined[task.name],), kwargs))
    return out


_hand_over = _HandOver()


def wait_for_hand_overs(timeout=HAND_OVER_TIMEOUT + 1):
    """Wait (a little) until this process's hand-overs so far are done: at exit, and in tests."""
    return _hand_over.wait(timeout)


atexit.register(wait_for_hand_overs)
