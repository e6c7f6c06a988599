"""The live view of every GPU: its latest reading, who runs what on it, and whether that matches its booking.

One read model for every surface that shows live telemetry: the live GPU page, the API's
telemetry/latest, /metrics, the Slack bot and the alert detector.
"""
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Prefetch, Q
from django.utils import timezone

from reservations.models import Device, Profile, Server, display_name_of
from reservations.selectors import Holding, unit_holdings

from .models import GpuSample, HostStatus


class Load:
    """A GPU's load, from its utilization and the configured thresholds."""

    IDLE = "idle"
    ACTIVE = "active"
    HIGH = "high"
    ERROR = "error"  # the GPU could not be read
    NO_DATA = "no data"  # never sampled, or the host is stale


class Match:
    """How what runs on a GPU compares with its booking."""

    FREE = "free"  # no booking, nothing running
    AS_BOOKED = "as booked"  # booked, and in use by its booker (or busy with processes hidden)
    BOOKED_IDLE = "booked, idle"  # booked, nothing running or under the active threshold
    UNBOOKED = "unbooked use"  # someone without a booking on it runs something
    UNKNOWN = "unknown"  # no fresh reading


class HostState:
    OK = "ok"
    STALE = "stale"
    NEVER = "never seen"
    NO_NVML = "no NVML"


def load_of(gpu_util: float | None) -> str:
    """idle / active / high for a utilization percentage (None: no data)."""
    if gpu_util is None:
        return Load.NO_DATA
    if gpu_util >= settings.GPU_HIGH_PERCENT:
        return Load.HIGH
    if gpu_util >= settings.GPU_ACTIVE_PERCENT:
        return Load.ACTIVE
    return Load.IDLE


def stale_after() -> timedelta:
    return timedelta(seconds=settings.TELEMETRY_INTERVAL_SECONDS * settings.TELEMETRY_STALE_INTERVALS)


@dataclass
class ProcessView:
    """A process on a GPU: its pid, memory and host user, and the member that user name belongs to."""

    pid: int
    used_memory_mib: int | None
    unix_user: str | None
    member_id: int | None = None
    member: str | None = None  # the member's name; None for a user name no member has
    booked: bool = False  # the member holds a booking on this GPU now
    name: str | None = None  # the program, e.g. python3


@dataclass
class GpuLive:
    device_id: int
    index: int
    uuid: str
    model: str
    memory_total_mib: int | None
    taken_at: datetime | None = None
    gpu_util: int | None = None
    mem_util: int | None = None
    memory_used_mib: int | None = None
    temperature_c: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    error: str = ""
    processes: list[ProcessView] | None = None  # None: the host could not see them (see processes_note)
    processes_note: str = ""
    load: str = Load.NO_DATA
    holding: Holding | None = None  # reservations.selectors.Holding of the booking holding it now
    match: str = Match.UNKNOWN

    @property
    def intruders(self) -> list[ProcessView]:
        """Processes of people who hold no booking on this GPU now (unknown users included)."""
        return [process for process in self.processes or [] if not process.booked]


@dataclass
class HostLive:
    server_id: int
    name: str
    location: str
    state: str
    last_seen_at: datetime | None = None
    driver_version: str = ""
    agent_version: str = ""
    nvml_error: str = ""
    gpus: list[GpuLive] = field(default_factory=list)

    @property
    def fresh(self) -> bool:
        return self.state in (HostState.OK, HostState.NO_NVML)


def live_hosts(now: datetime | None = None, *, server: str | None = None) -> list[HostLive]:
    """Every active, monitored server (or just `server`, a name) with its GPUs' latest readings."""
    now = now or timezone.now()
    chosen = Server.objects.filter(active=True, monitored=True).order_by("name")
    if server is not None:
        chosen = chosen.filter(name=server)
    servers = list(chosen.prefetch_related(Prefetch("devices", Device.objects.filter(active=True).order_by("index"))))
    statuses = {status.server_id: status for status in HostStatus.objects.filter(server__in=servers)}
    samples = _latest_samples(servers, statuses)
    holdings = unit_holdings(now)
    members = _members_by_unix_user(samples.values())
    cutoff = now - stale_after()

    hosts = []
    for srv in servers:
        status = statuses.get(srv.pk)
        host = HostLive(server_id=srv.pk, name=srv.name, location=srv.location, state=_host_state(status, cutoff))
        if status is not None:
            host.last_seen_at = status.last_seen_at
            host.driver_version = status.driver_version
            host.agent_version = status.agent_version
            host.nvml_error = status.nvml_error
        for device in srv.devices.all():
            current, _ = holdings.get(("gpu", device.pk), (None, None))
            sample = samples.get(device.pk) if host.state == HostState.OK else None
            host.gpus.append(_gpu_live(device, sample, current, members))
        hosts.append(host)
    return hosts


def _host_state(status: HostStatus | None, cutoff: datetime) -> str:
    if status is None:
        return HostState.NEVER
    if status.last_seen_at < cutoff:
        return HostState.STALE
    if status.nvml_error:
        return HostState.NO_NVML
    return HostState.OK


def _latest_samples(servers: list[Server], statuses: dict[int, HostStatus]) -> dict[int, GpuSample]:
    """{device id: its sample from its host's latest reading}: a reading's samples share one taken_at."""
    condition = Q()
    for srv in servers:
        status = statuses.get(srv.pk)
        device_ids = [device.pk for device in srv.devices.all()]
        if status is not None and device_ids:
            condition |= Q(device_id__in=device_ids, taken_at=status.last_seen_at)
    if not condition:
        return {}
    return {sample.device_id: sample for sample in GpuSample.objects.filter(condition)}


def _members_by_unix_user(samples: Iterable[GpuSample]) -> dict[str, tuple[int, str]]:
    """{unix user name: (user id, member name)} for every user name seen in these samples."""
    names = {p.get("user") for sample in samples for p in (sample.processes or []) if p.get("user")}
    if not names:
        return {}
    rows = Profile.objects.filter(unix_username__in=names).values_list(
        "unix_username", "user_id", "display_name", "user__first_name", "user__last_name", "user__username"
    )
    return {unix: (user_id, display_name_of(display, first, last, username)) for unix, user_id, display, first, last, username in rows}


def _gpu_live(device: Device, sample: GpuSample | None, holding: Holding | None, members: dict[str, tuple[int, str]]) -> GpuLive:
    gpu = GpuLive(
        device_id=device.pk, index=device.index, uuid=device.uuid, model=device.model,
        memory_total_mib=device.memory_mib, holding=holding,
    )
    if sample is None:
        gpu.match = Match.UNKNOWN
        return gpu
    gpu.taken_at = sample.taken_at
    gpu.error = sample.error
    if sample.error:
        gpu.load = Load.ERROR
        gpu.match = Match.UNKNOWN
        return gpu
    for name in ("gpu_util", "mem_util", "memory_used_mib", "temperature_c", "power_w", "power_limit_w"):
        setattr(gpu, name, getattr(sample, name))
    gpu.processes_note = sample.processes_note
    gpu.load = load_of(sample.gpu_util)
    if sample.processes is not None:
        gpu.processes = []
        for raw in sample.processes:
            unix_user = raw.get("user")
            member_id, member = members.get(unix_user, (None, None))
            booked = holding is not None and member_id is not None and member_id == holding.user_id
            gpu.processes.append(ProcessView(raw.get("pid"), raw.get("used_memory_mib"), unix_user, member_id, member, booked, raw.get("name")))
    gpu.match = _match(gpu, holding)
    return gpu


def _match(gpu: GpuLive, holding: Holding | None) -> str:
    busy = gpu.load in (Load.ACTIVE, Load.HIGH)
    if gpu.processes is None:  # cannot see who: judge by load alone
        if holding is None:
            return Match.UNBOOKED if busy else Match.FREE
        return Match.AS_BOOKED if busy else Match.BOOKED_IDLE
    if gpu.intruders:
        return Match.UNBOOKED
    if holding is None:
        return Match.FREE
    return Match.AS_BOOKED if gpu.processes and busy else Match.BOOKED_IDLE
