from celery import shared_task
from celery.signals import worker_ready
from django.core.cache import cache
from django.utils import timezone

HEARTBEAT_KEY = "labres:worker-heartbeat"


@shared_task(name="monitoring.tasks.heartbeat")
def heartbeat():
    """Beat sends this on a schedule; the time the worker ran it shows on /health/."""
    now = timezone.now()
    cache.set(HEARTBEAT_KEY, now.isoformat(), timeout=None)
    return now.isoformat()


@worker_ready.connect
def heartbeat_on_start(sender, **kwargs):
    """Beat's first heartbeat is an interval away; send one through the broker now."""
    heartbeat.delay()
