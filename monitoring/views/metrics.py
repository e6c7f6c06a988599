"""/metrics: live telemetry and booking state in Prometheus's text format, for labs that run Prometheus.

Built per request from monitoring.live (the read model every live surface shares) and two counts,
into a fresh registry: a constant number of queries however many GPUs there are. Readable with
settings.METRICS_TOKEN as a bearer token (what a Prometheus scrape job sends) or by staff signed in.
"""
import hmac

from django.conf import settings
from django.db.models import Count, Q
from django.http import HttpResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from reservations.models import Booking, Server

from ..live import HostState, Match, live_hosts
from ..models import Alert

MIB = 1024 * 1024
GPU_LABELS = ["server", "gpu", "uuid", "model"]
UNAUTHORIZED = (
    "Authentication required. Set METRICS_TOKEN in labres's environment and have Prometheus send it "
    "as a bearer token (scrape_config: authorization: {credentials: <token>}), or sign in as staff.\n"
)

# (metric name, help, GpuLive attribute, factor): the per-GPU readings, left out while there is none.
GPU_READINGS = (
    ("labres_gpu_utilization_percent", "GPU utilization, percent.", "gpu_util", 1),
    ("labres_gpu_memory_utilization_percent", "Memory bandwidth utilization, percent.", "mem_util", 1),
    ("labres_gpu_memory_used_bytes", "GPU memory in use, bytes.", "memory_used_mib", MIB),
    ("labres_gpu_temperature_celsius", "GPU temperature, degrees Celsius.", "temperature_c", 1),
    ("labres_gpu_power_watts", "Power draw, watts.", "power_w", 1),
    ("labres_gpu_power_limit_watts", "Enforced power limit, watts.", "power_limit_w", 1),
)


@require_GET
def metrics(request):
    """The exposition, or 401 with how to authenticate."""
    if not _allowed(request):
        return HttpResponse(UNAUTHORIZED, status=401, content_type="text/plain; charset=utf-8", headers={"WWW-Authenticate": "Bearer"})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LabresCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _allowed(request):
    token = settings.METRICS_TOKEN
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer":
        # Constant time: how much of a guess matched must not show in how long the answer takes.
        return hmac.compare_digest(credentials.strip().encode(), token.encode())
    return request.user.is_authenticated and request.user.is_staff


class LabresCollector:
    """Yields labres's metric families; each collect() reads the database afresh."""

    def collect(self):
        now = timezone.now()
        hosts = live_hosts(now)
        yield from self.gpu_families(hosts)
        yield from self.host_families(hosts)
        yield self.running_bookings(now)
        yield self.open_alerts()

    @staticmethod
    def gpu_families(hosts):
        readings = {name: GaugeMetricFamily(name, help_text, labels=GPU_LABELS) for name, help_text, _, _ in GPU_READINGS}
        total = GaugeMetricFamily("labres_gpu_memory_total_bytes", "GPU memory, bytes.", labels=GPU_LABELS)
        processes = GaugeMetricFamily(
            "labres_gpu_processes", "Compute processes on the GPU (absent when the host cannot see them).", labels=GPU_LABELS
        )
        booked = GaugeMetricFamily("labres_gpu_booked", "1 while a booking holds the GPU.", labels=GPU_LABELS)
        unbooked = GaugeMetricFamily(
            "labres_gpu_unbooked_use", "1 while someone without a booking on the GPU runs on it.", labels=GPU_LABELS
        )
        booking = GaugeMetricFamily(
            "labres_gpu_booking_info", "The booking holding the GPU now: its id and holder.", labels=["server", "gpu", "booking", "user"]
        )
        for host in hosts:
            for gpu in host.gpus:
                labels = [host.name, str(gpu.index), gpu.uuid, gpu.model]
                for name, _, attribute, factor in GPU_READINGS:
                    value = getattr(gpu, attribute)
                    if value is not None:
                        readings[name].add_metric(labels, value * factor)
                if gpu.memory_total_mib is not None:
                    total.add_metric(labels, gpu.memory_total_mib * MIB)
                if gpu.processes is not None:
                    processes.add_metric(labels, len(gpu.processes))
                booked.add_metric(labels, int(gpu.holding is not None))
                unbooked.add_metric(labels, int(gpu.match == Match.UNBOOKED))
                if gpu.holding is not None:
                    holder = gpu.holding.username
                    booking.add_metric([host.name, str(gpu.index), str(gpu.holding.booking_id), holder], 1)
        return [*readings.values(), total, processes, booked, unbooked, booking]

    @staticmethod
    def host_families(hosts):
        last_seen = GaugeMetricFamily(
            "labres_host_last_seen_timestamp_seconds", "When the host's latest reading was taken, Unix time.", labels=["server"]
        )
        up = GaugeMetricFamily("labres_host_up", "1 while the host reports in time (stale or never seen: 0).", labels=["server"])
        stale = GaugeMetricFamily("labres_host_stale", "1 when the host reported once but not lately.", labels=["server"])
        info = GaugeMetricFamily(
            "labres_host_info", "The host's driver and agent versions.", labels=["server", "driver_version", "agent_version"]
        )
        for host in hosts:
            if host.last_seen_at is not None:
                last_seen.add_metric([host.name], host.last_seen_at.timestamp())
                info.add_metric([host.name, host.driver_version, host.agent_version], 1)
            up.add_metric([host.name], int(host.fresh))
            stale.add_metric([host.name], int(host.state == HostState.STALE))
        return [last_seen, up, stale, info]

    @staticmethod
    def running_bookings(now):
        family = GaugeMetricFamily(
            "labres_bookings_running", "Bookings running now, by server (GPUs or the whole server).", labels=["server"]
        )
        running = Q(bookings__status=Booking.Status.CONFIRMED, bookings__start__lte=now, bookings__end__gt=now)
        rows = Server.objects.filter(active=True).annotate(n=Count("bookings", filter=running)).order_by("name").values_list("name", "n")
        for name, count in rows:
            family.add_metric([name], count)
        return family

    @staticmethod
    def open_alerts():
        family = GaugeMetricFamily("labres_alerts_open", "Open alerts, by kind.", labels=["kind"])
        counts = dict(Alert.objects.filter(resolved_at__isnull=True).values_list("kind").annotate(n=Count("id")).order_by())
        for kind in Alert.Kind.values:
            family.add_metric([kind], counts.get(kind, 0))
        return family


urlpatterns = [
    path("metrics", metrics, name="metrics"),
]
