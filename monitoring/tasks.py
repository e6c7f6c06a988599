import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

HEARTBEAT_KEY = "labres:worker-heartbeat"

logger = logging.getLogger(__name__)


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


@shared_task(name="monitoring.tasks.sample_host")
def sample_host(server_name):
    """On a GPU host's own worker: read its GPUs through NVML and store the reading; returns the samples written."""
    from reservations.models import Server

    from .nvml import load_backend
    from .sampler import read_host
    from .services import record_reading

    server = Server.objects.filter(name=server_name, active=True).first()
    if server is None:
        logger.warning("sample_host: no active server named %r; reading skipped.", server_name)
        return 0
    backend = load_backend()
    if getattr(backend, "IS_FAKE", False):
        from .demo_host import fake_host_for

        backend = fake_host_for(server)  # the fake host shaped like this server and its bookings
    reading = read_host(backend)
    return record_reading(server, reading, agent_version=agent_version())


@shared_task(name="monitoring.tasks.sample_all_hosts")
def sample_all_hosts():
    """Beat sends this: one sample_host message per active server, on that host's queue host.<name>.

    A message a host has not taken within one interval expires: the next one is already on its way.
    """
    from reservations.models import Server

    names = list(Server.objects.filter(active=True, monitored=True).values_list("name", flat=True))
    for name in names:
        sample_host.apply_async(args=[name], queue=f"host.{name}", expires=settings.TELEMETRY_INTERVAL_SECONDS)
    return len(names)


def agent_version():
    """This host agent's labres version, shown in the admin beside each host."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("labres")
    except PackageNotFoundError:
        return "unknown"


@shared_task(name="monitoring.tasks.rollup_recent")
def rollup_recent():
    """Beat, every minute: recompute the recent minute and hour rollups."""
    from .rollup import rollup_recent as run

    return run()


@shared_task(name="monitoring.tasks.prune_telemetry")
def prune_telemetry():
    """Beat, hourly: delete raw samples and rollups past their retention."""
    from .rollup import prune

    return prune()


@shared_task(name="monitoring.tasks.detect_alerts")
def detect_alerts():
    """Beat, every minute: idle bookings, unbooked use, stale hosts."""
    from .alerts import detect

    return detect()


@shared_task(name="monitoring.tasks.settle_booking_usage")
def settle_booking_usage():
    """Beat, every 5 minutes: store the actual use of bookings that ended."""
    from .usage import settle_ended

    return settle_ended()


@shared_task(name="monitoring.tasks.warm_usage_reports")
def warm_usage_reports():
    """Beat, every 4 minutes: the usage page's one-click periods, computed before anyone asks."""
    from .analytics import warm_usage_reports as warm

    return warm()
