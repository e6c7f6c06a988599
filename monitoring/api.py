"""Telemetry in the JSON API: every GPU's latest reading (telemetry/latest/) and one GPU's history
(telemetry/history/).

Auth, throttles and the error shape are the API's defaults (reservations.api). Times without an
offset are read in the member's zone; answers give UTC with Z. The views build their answers by
hand from monitoring.live and monitoring.history; the serializers below describe those shapes for
the schema and read the query strings.
"""
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from reservations.api.serializers import PlainTextField, TimeField, UTCTimeField
from reservations.api.times import activate_member_zone, query_of, utc_iso
from reservations.models import Device, Server
from reservations.parsing import ParseError, format_device_set, parse_target

from .history import PERIODS, gpu_history
from .live import HostState, Load, Match, live_hosts

HOST_STATES = (HostState.OK, HostState.STALE, HostState.NEVER, HostState.NO_NVML)
LOADS = (Load.IDLE, Load.ACTIVE, Load.HIGH, Load.ERROR, Load.NO_DATA)
MATCHES = (Match.FREE, Match.AS_BOOKED, Match.BOOKED_IDLE, Match.UNBOOKED, Match.UNKNOWN)
RESOLUTIONS = ("raw", "minute", "hour")
DEFAULT_SPAN = timedelta(hours=1)
MAX_SPAN = timedelta(days=400)


# --- shapes out (for the schema: the views build them by hand) ------------------------------


class ProcessSerializer(serializers.Serializer):
    pid = serializers.IntegerField()
    name = serializers.CharField(allow_null=True, help_text="The program, e.g. python3; null when NVML cannot tell.")
    used_memory_mib = serializers.IntegerField(allow_null=True, help_text="Null where the driver cannot tell.")
    unix_user = serializers.CharField(allow_null=True, help_text="The process's owner on the host; null when unknown.")
    member = serializers.CharField(allow_null=True, help_text="The member with that unix user name; null when no member has it.")


class HoldingSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The booking's id.")
    user = serializers.CharField(help_text="The holder's user name.")
    user_name = serializers.CharField(help_text="The name the holder goes by.")
    until = UTCTimeField(help_text="When the booking ends.")
    purpose = serializers.CharField(allow_blank=True)


class GpuTelemetrySerializer(serializers.Serializer):
    device = serializers.CharField(help_text="SERVER:INDEX, e.g. thalys:3.")
    index = serializers.IntegerField()
    uuid = serializers.CharField(allow_blank=True)
    model = serializers.CharField(allow_blank=True)
    memory_total_mib = serializers.IntegerField(allow_null=True)
    taken_at = UTCTimeField(allow_null=True, help_text="When the reading was taken; null without a fresh one.")
    gpu_util = serializers.IntegerField(allow_null=True, help_text="Percent.")
    mem_util = serializers.IntegerField(allow_null=True, help_text="Memory bandwidth use, percent.")
    memory_used_mib = serializers.IntegerField(allow_null=True)
    temperature_c = serializers.IntegerField(allow_null=True)
    power_w = serializers.FloatField(allow_null=True)
    power_limit_w = serializers.FloatField(allow_null=True)
    load = serializers.ChoiceField(choices=LOADS, help_text="From the utilization and the lab's thresholds.")
    match = serializers.ChoiceField(choices=MATCHES, help_text="How what runs on the GPU compares with its booking.")
    error = serializers.CharField(allow_blank=True, help_text="NVML's message when the GPU could not be read.")
    processes = ProcessSerializer(many=True, allow_null=True, help_text="Null when the host could not see them (see processes_note).")
    processes_note = serializers.CharField(allow_blank=True)
    booking = HoldingSerializer(allow_null=True, help_text="The booking holding the GPU now, or null.")


# A component of its own: as a plain choice field it would share the name "state" with the
# bookings' states, and drf-spectacular would rename that enum to tell them apart.
@extend_schema_field({"type": "string", "enum": list(HOST_STATES)}, component_name="HostStateEnum")
class HostStateField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=HOST_STATES, **kwargs)


class HostTelemetrySerializer(serializers.Serializer):
    server = serializers.CharField(help_text="The server's name.")
    state = HostStateField(help_text="ok; stale (no reading lately); never seen; no NVML (the host reports, NVML fails).")
    last_seen_at = UTCTimeField(allow_null=True, help_text="When the host's latest reading was taken; null if never.")
    driver_version = serializers.CharField(allow_blank=True)
    agent_version = serializers.CharField(allow_blank=True)
    nvml_error = serializers.CharField(allow_blank=True)
    gpus = GpuTelemetrySerializer(many=True)


class PointSerializer(serializers.Serializer):
    at = UTCTimeField(help_text="The sample's time, or the start of the minute or hour.")
    gpu_util = serializers.FloatField(allow_null=True, help_text="Percent; the bucket's mean.")
    gpu_util_max = serializers.IntegerField(allow_null=True)
    mem_util = serializers.FloatField(allow_null=True)
    memory_used_mib = serializers.FloatField(allow_null=True, help_text="The bucket's mean.")
    memory_peak_mib = serializers.IntegerField(allow_null=True)
    temperature_c = serializers.IntegerField(allow_null=True, help_text="The bucket's maximum.")
    power_w = serializers.FloatField(allow_null=True, help_text="The bucket's mean.")
    samples = serializers.IntegerField(help_text="Readable samples in the bucket (1 for a raw sample).")


class HistorySerializer(serializers.Serializer):
    device = serializers.CharField(help_text="SERVER:INDEX.")
    resolution = serializers.ChoiceField(choices=RESOLUTIONS)
    start = UTCTimeField()
    end = UTCTimeField()
    points = PointSerializer(many=True, help_text="Oldest first; buckets without readable samples are left out.")


# --- shapes in -------------------------------------------------------------------------------


class LatestQuerySerializer(serializers.Serializer):
    server = PlainTextField(label="server's name", required=False, max_length=200, help_text="Only this server (its name, any case).")


@extend_schema_field({"type": "string", "pattern": r"^[^:\s]+:[0-9]{1,4}$"})
class GpuField(serializers.CharField):
    """One GPU as SERVER:INDEX; the schema states the form, gpu_named() says what is wrong with another."""


class HistoryQuerySerializer(serializers.Serializer):
    device = GpuField(max_length=200, help_text="One GPU as SERVER:INDEX, e.g. thalys:3.")
    start = TimeField(required=False, help_text="ISO 8601; without an offset, in your time zone. Default: an hour before end.")
    end = TimeField(required=False, help_text="ISO 8601. Default: now. At most 400 days after start.")
    period = serializers.ChoiceField(
        choices=list(PERIODS), required=False, help_text="The last hour, day, week or month (30 days) up to now, instead of start and end."
    )
    resolution = serializers.ChoiceField(
        choices=RESOLUTIONS, required=False,
        help_text="raw samples, minute or hour rollups. Default: the finest that suits the span and is still kept.",
    )

    def validate_device(self, text):
        return gpu_named(text)

    def validate(self, data):
        period = data.get("period")
        if period and ("start" in data or "end" in data):
            raise serializers.ValidationError({"period": ["Give a period or a start and end, not both."]})
        if period:
            end = timezone.now()
            return {**data, "start": end - PERIODS[period], "end": end}
        end = data.get("end") or timezone.now()
        start = data.get("start") or end - DEFAULT_SPAN
        if end <= start:
            default = "" if "end" in data else " (the end is now unless you give one)"
            raise serializers.ValidationError({"end": [f"The end must be after the start{default}."]})
        if end - start > MAX_SPAN:
            raise serializers.ValidationError({"end": [f"A history spans at most {MAX_SPAN.days} days; ask for a shorter one."]})
        return {**data, "start": start, "end": end}


def gpu_named(text):
    """The Device that 'thalys:3' names; a ValidationError saying what is wrong otherwise."""
    try:
        server_name, indices = parse_target(text)
    except ParseError as error:
        raise serializers.ValidationError(str(error)) from None
    if indices is None or len(indices) != 1:
        example = f"{server_name}:{indices[0] if indices else 0}"
        raise serializers.ValidationError(f"'{text.strip()}' is not one GPU; name one GPU, e.g. {example}.")
    server = Server.objects.filter(name__iexact=server_name).first()
    if server is None:
        known = ", ".join(Server.objects.filter(active=True).values_list("name", flat=True)) or "none yet"
        raise serializers.ValidationError(f"There is no server '{server_name}'; servers: {known}.")
    devices = {device.index: device for device in Device.objects.filter(server=server).select_related("server")}
    device = devices.get(indices[0])
    if device is None:
        has = f"it has {format_device_set(devices)}" if devices else "it has none"
        raise serializers.ValidationError(f"{server.name} has no GPU {indices[0]} ({has}).")
    return device


# --- views -----------------------------------------------------------------------------------


class MemberZoneMixin:
    # Times without an offset are read in the member's zone, known once DRF has authenticated them.
    # (The same as reservations.api.views has: an app imports another's services, not its views.)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        activate_member_zone(request.user)


class TelemetryLatestView(MemberZoneMixin, APIView):
    """Every monitored server's GPUs as last read: load, memory, heat, power, who runs what, and the
    booking beside it. A stale host's GPUs show no reading. Constant query count."""

    @extend_schema(
        parameters=[LatestQuerySerializer],
        responses=HostTelemetrySerializer(many=True),
        summary="Every monitored GPU's latest reading, with its processes and booking",
    )
    def get(self, request):
        query = LatestQuerySerializer(data=query_of(request))
        query.is_valid(raise_exception=True)
        name = query.validated_data.get("server")
        hosts = live_hosts(server=monitored_server(name).name if name is not None else None)
        return Response([host_data(host) for host in hosts])


class TelemetryHistoryView(MemberZoneMixin, APIView):
    """One GPU's utilization, memory, temperature and power over a span, from raw samples or the
    minute or hour rollups."""

    @extend_schema(
        parameters=[HistoryQuerySerializer],
        responses=HistorySerializer,
        summary="One GPU's history over a span (start and end, or a period up to now)",
    )
    def get(self, request):
        query = HistoryQuerySerializer(data=query_of(request))
        query.is_valid(raise_exception=True)
        data = query.validated_data
        device = data["device"]
        resolution, points = gpu_history(device.pk, data["start"], data["end"], resolution=data.get("resolution"))
        return Response({
            "device": str(device),
            "resolution": resolution,
            "start": utc_iso(data["start"]),
            "end": utc_iso(data["end"]),
            "points": [point.as_dict() for point in points],
        })


def monitored_server(name):
    """The active, monitored server called `name` (any case); NotFound saying why otherwise."""
    name = name.strip()
    server = Server.objects.filter(name__iexact=name).first()
    if server is not None and server.active and server.monitored:
        return server
    known = ", ".join(Server.objects.filter(active=True, monitored=True).values_list("name", flat=True)) or "none yet"
    if server is None:
        raise NotFound(f"There is no server '{name}'; monitored servers: {known}.")
    why = "is out of service" if not server.active else "is not monitored (no host agent samples it)"
    raise NotFound(f"{server.name} {why}; monitored servers: {known}.")


def host_data(host):
    """A monitoring.live.HostLive as the API shows it."""
    return {
        "server": host.name,
        "state": host.state,
        "last_seen_at": utc_iso(host.last_seen_at) if host.last_seen_at else None,
        "driver_version": host.driver_version,
        "agent_version": host.agent_version,
        "nvml_error": host.nvml_error,
        "gpus": [_gpu_data(host.name, gpu) for gpu in host.gpus],
    }


def _gpu_data(server_name, gpu):
    holding = gpu.holding
    return {
        "device": f"{server_name}:{gpu.index}",
        "index": gpu.index,
        "uuid": gpu.uuid,
        "model": gpu.model,
        "memory_total_mib": gpu.memory_total_mib,
        "taken_at": utc_iso(gpu.taken_at) if gpu.taken_at else None,
        "gpu_util": gpu.gpu_util,
        "mem_util": gpu.mem_util,
        "memory_used_mib": gpu.memory_used_mib,
        "temperature_c": gpu.temperature_c,
        "power_w": gpu.power_w,
        "power_limit_w": gpu.power_limit_w,
        "load": gpu.load,
        "match": gpu.match,
        "error": gpu.error,
        "processes": None if gpu.processes is None else [
            {"pid": p.pid, "name": p.name, "used_memory_mib": p.used_memory_mib, "unix_user": p.unix_user, "member": p.member}
            for p in gpu.processes
        ],
        "processes_note": gpu.processes_note,
        "booking": None if holding is None else {
            "id": holding.booking_id,
            "user": holding.username,
            "user_name": holding.name,
            "until": utc_iso(holding.end),
            "purpose": holding.purpose,
        },
    }
