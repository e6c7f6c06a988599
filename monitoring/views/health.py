from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone

from ..tasks import HEARTBEAT_KEY


def health(request):
    """Liveness for load balancers and people: the database answers; the worker ran lately."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = "ok"
    except Exception as error:  # any driver error means "down" here
        database = f"error: {error.__class__.__name__}"
    last_seen = cache.get(HEARTBEAT_KEY)
    interval = settings.CELERY_BEAT_SCHEDULE["worker-heartbeat"]["schedule"]
    worker_ok = bool(last_seen) and timezone.now() - datetime.fromisoformat(last_seen) < 3 * interval
    body = {
        "status": "ok" if database == "ok" and worker_ok else "degraded",
        "database": database,
        "worker": "ok" if worker_ok else "no heartbeat in the last " + str(3 * interval if isinstance(interval, timedelta) else interval),
        "worker_last_seen": last_seen,
    }
    return JsonResponse(body, status=200 if database == "ok" else 503)
