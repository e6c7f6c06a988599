"""The Celery application: web, worker, beat and host agents all load this one."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labres.settings")

app = Celery("labres")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Sending a task from a request (or a thread serving one) must not wait for a broker that is down:
# one connection attempt, short socket timeouts, no retries.
SEND_TIMEOUT = 2  # seconds
SEND_TRANSPORT_OPTIONS = {"max_retries": 0, "socket_connect_timeout": SEND_TIMEOUT, "socket_timeout": SEND_TIMEOUT}


def send_task_once(task, args):
    """Send a task with one connection attempt and short timeouts; raises if the broker is unreachable.

    Through Celery's own pool, a Redis that is down costs each caller about 6 s of connection
    retries, a host that drops packets the OS's connect timeout (minutes), and a Redis that
    accepts but does not answer, for ever. These pooled connections try once, with timeouts;
    kombu keeps one pool per broker URL and options.
    """
    from kombu.pools import connections

    if task.app.conf.task_always_eager:
        task.apply_async(args=args)
        return
    broker = task.app.connection_for_write(transport_options=SEND_TRANSPORT_OPTIONS)
    with connections[broker].acquire(block=True, timeout=SEND_TIMEOUT) as connection:
        connection.ensure_connection(max_retries=0)
        task.apply_async(args=args, connection=connection, retry=False)
