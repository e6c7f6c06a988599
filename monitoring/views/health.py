import logging
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone

from ..tasks import HEARTBEAT_KEY

logger = logging.getLogger(__name__)
PROBE_TIMEOUT = 2  # seconds each of cache and broker may take to answer


def health(request):
    """Liveness for load balancers and people: the database, the cache and the broker answer (else 503,
    naming what is down); the worker ran lately (else 'degraded', still 200: bookings work without it)."""
    parts = {"database": _database(), "cache": _cache(), "broker": _broker()}
    down = [name for name, state in parts.items() if state != "ok"]
    last_seen = _last_heartbeat() if parts["cache"] == "ok" else None
    interval = settings.CELERY_BEAT_SCHEDULE["worker-heartbeat"]["schedule"]
    worker_ok = bool(last_seen) and timezone.now() - datetime.fromisoformat(last_seen) < 3 * interval
    if parts["cache"] != "ok":
        worker = "unknown: its heartbeat is kept in the cache, which is down"
    else:
        worker = "ok" if worker_ok else "no heartbeat in the last " + str(3 * interval if isinstance(interval, timedelta) else interval)
    body = {
        "status": "down" if down else ("ok" if worker_ok else "degraded"),
        "down": down,
        **parts,
        "worker": worker,
        "worker_last_seen": last_seen,
    }
    return JsonResponse(body, status=503 if down else 200)


def _database():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as error:  # any driver error means "down" here
        return _down("database", error)


def _cache():
    """A write and a read back: a cache that answers reads but refuses writes is down too."""
    try:
        token = secrets.token_hex(8)
        cache.set("health:probe", token, timeout=60)
        if cache.get("health:probe") != token:
            return "error: what was written could not be read back"
        return "ok"
    except Exception as error:
        return _down("cache", error)


def _broker():
    """One connection attempt with short timeouts (Celery's own would retry for seconds)."""
    from kombu import Connection

    options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "max_retries": 0}
    options.update(socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT)
    try:
        with Connection(settings.CELERY_BROKER_URL, transport_options=options, connect_timeout=PROBE_TIMEOUT) as broker:
            broker.ensure_connection(max_retries=0, timeout=PROBE_TIMEOUT)
            broker.default_channel  # the Redis transport talks to the server here
        return "ok"
    except Exception as error:
        return _down("broker", error)


def _last_heartbeat():
    try:
        return cache.get(HEARTBEAT_KEY)
    except Exception:  # the cache failed between the probe and now
        return None


def _down(part, error):
    # The page is public: the class of the error only; its text (hosts, ports) goes to the log.
    logger.warning("health: the %s is down (%s: %s)", part, type(error).__name__, error)
    return f"error: {type(error).__name__}"
