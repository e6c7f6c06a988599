"""Shapes in and out of the API.

Input serializers check shapes and read what people type: times (a time without an offset is
in the member's zone, which the view has activated), durations ('2h') and device sets ('0-1')
or lists of device ids. Whether a booking can be made is the service's to say.
"""
import types
from datetime import UTC, datetime, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import Booking, BookingAuditEntry, Device, Limit, Room, Server, member_name
from ..parsing import EARLIEST, LATEST, MAX_DEVICE_INDEX, ParseError, format_device_set, parse_device_set, parse_duration
from ..text import text_problem
from .errors import CODES, refused_date
from .times import utc_iso

BIGINT_MAX = 2**63 - 1
STATES = ("upcoming", "running", "ended", "cancelled", "released", "pending")
DEFAULT_WINDOW = timedelta(hours=24)
MAX_WINDOW = timedelta(days=31)
CLIENT_SOURCES = (Booking.Source.API.value, Booking.Source.CLI.value)
# Why one date of a repeat cannot be booked: the code of the error create_booking raised for it.
REFUSAL_CODES = ("conflict", "limit_exceeded", "not_allowed_here", "capacity_exceeded", "invalid")


# --- fields ------------------------------------------------------------------------------


class UTCTimeField(serializers.DateTimeField):
    """A time written in UTC with Z, whatever zone the request reads times in."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=UTC, **kwargs)


# What the schema promises the API reads as a time: ISO 8601 from 1970 to 2999, minutes at least, an
# offset optional. The server reads more (Python's fromisoformat), never less.
TIME_PATTERN = (
    r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9]"
    r"(:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?$"
)
TIME_SCHEMA = {"type": "string", "pattern": TIME_PATTERN, "example": "2026-11-24T09:00:00Z"}


def written_in_range(text):
    """Whether a time's year, as written (before any offset moves it), lies from 1970 to 2999; True if unreadable
    (the parser then says what is wrong)."""
    try:
        moment = parse_datetime(text) if isinstance(text, str) else None
    except ValueError:  # well formed but no such day (1996-09-31): the parser says so
        return True
    return moment is None or EARLIEST.year <= moment.year < LATEST.year


@extend_schema_field(TIME_SCHEMA)
class TimeField(serializers.DateTimeField):
    """An ISO 8601 time; without an offset it is read in the member's zone. Kept in UTC."""

    default_error_messages = {"range": "Times must lie between 1970 and 2999."}

    def to_internal_value(self, value):
        if not written_in_range(value):
            self.fail("range")
        try:
            moment = super().to_internal_value(value)  # aware, in the active (member's) zone
            # In UTC, so that adding a duration adds real time even across a daylight-saving change.
            return moment.astimezone(UTC)
        except OverflowError:  # year 9999 west of UTC, year 1 east of it (DRF converts while reading)
            self.fail("range")


def _number(digits, *, positive):
    """A regex for a whole number of at most `digits` digits (leading zeros aside), above zero if `positive`."""
    return f"0{{0,{digits - 1}}}[1-9][0-9]{{0,{digits - 1}}}" if positive else f"[0-9]{{1,{digits}}}"


# A length above zero in days, hours and minutes. The digits are bounded so that whatever the pattern
# admits (at most 999d 9999h 99999m, about 1484 days) is within MAX_DURATION (3650 days).
_D, _H, _M = (lambda positive: _number(3, positive=positive) + "[dD]"), (lambda positive: _number(4, positive=positive) + "[hH]"), (lambda positive: _number(5, positive=positive) + "[mM]")
DURATION_PATTERN = f"^({_D(True)}({_H(False)})?({_M(False)})?|({_D(False)})?{_H(True)}({_M(False)})?|({_D(False)})?({_H(False)})?{_M(True)})$"


@extend_schema_field({"type": "string", "pattern": DURATION_PATTERN})
class DurationField(serializers.CharField):
    """A length written like 30m, 2h, 1h30m or 1d; becomes a timedelta."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 50)
        kwargs.setdefault("help_text", "A length above zero like 30m, 2h, 1h30m or 1d, at most 3650d.")
        super().__init__(**kwargs)

    def run_validation(self, data=serializers.empty):
        text = super().run_validation(data)  # a string, its length checked
        try:
            return parse_duration(text)
        except ParseError as error:
            raise serializers.ValidationError(str(error)) from None


# One line of plain text: what reservations.text refuses (control characters, line and paragraph
# separators, bidirectional controls) is outside the pattern.
PLAIN_TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069]*$"


@extend_schema_field({"type": "string", "pattern": PLAIN_TEXT_PATTERN})
class PlainTextField(serializers.CharField):
    """Text members write and others read (a purpose, a reason, a name): one line, refused with
    reservations.text's message, before any whitespace is trimmed."""

    def __init__(self, *, label="text", **kwargs):
        self.text_label = label
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        problem = text_problem(str(data), label=self.text_label) if isinstance(data, str) else None
        if problem:
            raise serializers.ValidationError(problem)
        return super().to_internal_value(data)


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "integer"}]})
class NameOrIdField(serializers.CharField):
    """A server or room by name (any case) or by id; a JSON number is read as text."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 200)
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "description": "A device set of GPU indices, e.g. '0-1' or '0-2,5'; empty means the whole server."},
            {"type": "array", "items": {"type": "integer"}, "description": "Device ids (see devices/), all on the named server."},
        ],
        "nullable": True,
    }
)
class DevicesField(serializers.Field):
    """GPUs of the named server: '0-1', or [device ids]; null or '' books the whole server.

    Becomes {"indices": [...]} or {"ids": [...]}; ids become indices once the server is known.
    """

    default_error_messages = {"invalid": "Give GPUs as a device set like '0-1' or as a list of device ids."}

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str):
            if not data.strip():
                return None
            try:
                return {"indices": parse_device_set(data)}
            except ParseError as error:
                raise serializers.ValidationError(str(error)) from None
        if isinstance(data, list) and len(data) > MAX_DEVICE_INDEX + 1:  # before looking at each
            raise serializers.ValidationError(f"A server has at most {MAX_DEVICE_INDEX + 1} GPUs; this list has {len(data)} device ids.")
        if isinstance(data, list) and all(isinstance(item, int) and not isinstance(item, bool) for item in data):
            return {"ids": data}
        self.fail("invalid")


# --- reads -------------------------------------------------------------------------------


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    name = serializers.CharField()
    email = serializers.CharField()
    time_zone = serializers.CharField(help_text="The zone times without an offset are read in.")
    is_staff = serializers.BooleanField()


class DeviceInServerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = ["id", "index", "model", "memory_mib", "uuid", "active"]


class ServerSerializer(serializers.ModelSerializer):
    devices = DeviceInServerSerializer(many=True, read_only=True)

    class Meta:
        model = Server
        fields = ["id", "name", "hostname", "location", "description", "active", "devices"]


class DeviceSerializer(serializers.ModelSerializer):
    server = serializers.CharField(source="server.name", help_text="The server's name.")

    class Meta:
        model = Device
        fields = ["id", "server", "index", "model", "memory_mib", "uuid", "active"]


class RoomSerializer(serializers.ModelSerializer):
    class Meta:
        model = Room
        fields = ["id", "name", "capacity", "location", "description", "active"]


class _Computed:
    """A field whose value no attribute holds: `compute(instance, context)` gives it. The field's class
    still says its type for the schema."""

    def __init__(self, compute, **kwargs):
        self.compute = compute
        super().__init__(**kwargs)

    def get_attribute(self, instance):
        return self.compute(instance, self.context)


class ComputedCharField(_Computed, serializers.CharField):
    pass


class ComputedChoiceField(_Computed, serializers.ChoiceField):
    pass


class ComputedListField(_Computed, serializers.ListField):
    pass


class ComputedDictField(_Computed, serializers.DictField):
    pass


def _devices(booking):
    """The GPUs booked one by one, by index, from the prefetched allocations; [] for a whole server or a room."""
    if booking.room_id or booking.whole_server:
        return []
    held = getattr(booking, "_gpus_held", None)  # devices and device_ids both ask: sorted once per booking
    if held is None:
        held = sorted((a.unit.device for a in booking.allocations.all() if a.unit.device_id), key=lambda device: device.index)
        booking._gpus_held = held
    return held


class DeclaredOutput:
    """A read serializer's output from its declared fields, read the way DRF reads them, without DRF's per-field
    machinery on every row.

    A list of 50 bookings read field by field through Serializer.to_representation cost bench/api.py's `mine`
    about a fifth of its requests per second at 16 clients; this reads each row with one plan per serializer
    class (the declared fields stay the one source: names, sources, types, the schema). The plan is made once
    per process, from fields bound to a serializer of its own: binding a serializer's fields (deep copies of
    the declared ones) cost each one-booking answer (a create) about a millisecond.
    tests/api/test_serializers.py holds it to Serializer.to_representation's output.
    """

    def to_representation(self, instance):
        context = self.context
        return {name: None if (value := read(instance, context)) is None else write(value) for name, read, write in self._output_plan()}

    @classmethod
    def _output_plan(cls):
        plan = cls.__dict__.get("_plan")
        if plan is None:  # two threads may both make it: the same plan
            plan = [(field.field_name, _reader(field), _writer(field)) for field in cls()._readable_fields]
            cls._plan = plan
        return plan


def _reader(field):
    if isinstance(field, _Computed):
        return field.compute
    attrs = field.source_attrs
    if len(attrs) == 1 and not field.allow_null:
        name = attrs[0]
        return lambda instance, context: getattr(instance, name)

    def read(instance, context):
        # As DRF's fields.get_attribute reads a dotted source, calling methods ('user.get_username'),
        # without its per-value signature checks; anything unusual is left to DRF itself.
        value = instance
        for attr in attrs:
            if value is None:
                return None if field.allow_null else field.get_attribute(instance)
            value = getattr(value, attr, _MISSING)
            if value is _MISSING:
                return field.get_attribute(instance)
            if isinstance(value, (types.MethodType, types.FunctionType)):
                value = value()
        return value

    return read


_MISSING = object()


def _writer(field):
    if isinstance(field, serializers.ListField) and type(field.child) is serializers.IntegerField:
        return lambda values: [None if value is None else int(value) for value in values]
    if type(field) is UTCTimeField:
        return utc_iso
    if type(field) in (serializers.IntegerField, serializers.CharField, ComputedCharField):
        return int if type(field) is serializers.IntegerField else str
    return field.to_representation


class BookingSerializer(DeclaredOutput, serializers.Serializer):
    """A booking: who holds what, from when to when (UTC), and why."""

    # The declared fields are the output. Load bookings with views.bookings_with_relations(): a page
    # then costs three queries (each field reads what that loads; series is the id, not the row).
    id = serializers.IntegerField()
    user = serializers.CharField(source="user.get_username", help_text="The holder's user name.")
    user_name = ComputedCharField(lambda booking, context: member_name(booking.user), help_text="The name the holder goes by.")
    purpose = serializers.CharField(allow_blank=True)
    start = UTCTimeField()
    end = UTCTimeField()
    status = serializers.ChoiceField(choices=Booking.Status.choices)
    state = ComputedChoiceField(
        lambda booking, context: booking.state(context.get("now")), choices=STATES,
        help_text="What a member sees: upcoming, running, ended, cancelled, released, or pending (awaiting staff approval).",
    )
    source = serializers.ChoiceField(choices=Booking.Source.choices)
    server = serializers.CharField(source="server.name", allow_null=True, help_text="The server's name, or null for a room.")
    devices = ComputedCharField(
        lambda booking, context: format_device_set(device.index for device in _devices(booking)) or None, allow_null=True,
        help_text="The GPUs as a device set ('0-1'), or null for a whole server or a room.",
    )
    device_ids = ComputedListField(
        lambda booking, context: [device.pk for device in _devices(booking)], child=serializers.IntegerField(),
        help_text="The ids of the GPUs booked one by one; [] for a whole server or a room.",
    )
    whole_server = serializers.BooleanField()
    room = serializers.CharField(source="room.name", allow_null=True, help_text="The room's name, or null.")
    cpu_cores = serializers.IntegerField(help_text="CPU cores of the server's pool (0: none).")
    memory_gib = serializers.IntegerField(help_text="GiB of the server's memory pool (0: none).")
    what = serializers.CharField(help_text="What is booked, as people write it: 'thalys:0-1', 'thalys (whole server)', 'room Lab 2'.")
    created_at = UTCTimeField()
    updated_at = UTCTimeField()
    series = serializers.IntegerField(
        source="series_id", allow_null=True, help_text="The recurring booking (series/{id}/) this is one date of, or null.",
    )


class AuditEntrySerializer(DeclaredOutput, serializers.Serializer):
    """One entry of a booking's history: who did what, when (UTC), via which surface, and what it changed."""

    # The declared fields are the output, as in BookingSerializer; load entries with selectors.booking_history().
    id = serializers.IntegerField()
    at = UTCTimeField()
    action = serializers.ChoiceField(choices=BookingAuditEntry.Action.choices)
    actor = ComputedCharField(
        lambda entry, context: entry.actor.get_username() if entry.actor else None, allow_null=True,
        help_text="The user name of who acted, or null: the system (an expiry).",
    )
    actor_name = ComputedCharField(
        lambda entry, context: member_name(entry.actor) if entry.actor else None, allow_null=True, help_text="The name they go by, or null.",
    )
    surface = serializers.ChoiceField(
        choices=BookingAuditEntry.Surface.choices, help_text="Where it came from: web, api, slack, cli, admin, ics (calendar import) or system.",
    )
    changes = ComputedDictField(
        lambda entry, context: {name: [_iso_or_text(before), _iso_or_text(after)] for name, before, after in entry.changed_fields()},
        child=serializers.ListField(child=serializers.CharField(allow_null=True), min_length=2, max_length=2),
        help_text="{field: [before, after]} for status, decision, start, end and purpose; times in UTC, null: none before.",
    )
    note = serializers.CharField(allow_blank=True, help_text="A decline's reason, or empty.")
    series = serializers.IntegerField(source="series_id", allow_null=True, help_text="The series the booking is a date of, or null.")


def _iso_or_text(value):
    return utc_iso(value) if isinstance(value, datetime) else value


# --- writes ------------------------------------------------------------------------------


class TimesMixin:
    def _end_from(self, data, start):
        """The end from 'end' or 'duration' (exactly one of them)."""
        end, duration = data.get("end"), data.get("duration")
        if (end is None) == (duration is None):
            raise serializers.ValidationError({"end": ["Give an end time or a duration (e.g. 2h): one of the two."]})
        if end is not None:
            return end
        try:
            return start + duration
        except OverflowError:
            raise serializers.ValidationError({"duration": ["That is too far ahead."]}) from None


class BookingCreateSerializer(TimesMixin, serializers.Serializer):
    server = NameOrIdField(help_text="A server by name or id, for its GPUs or the whole server.")
    devices = DevicesField()
    room = NameOrIdField(help_text="A room by name or id, instead of a server.")
    start = TimeField(help_text="ISO 8601; without an offset, in your time zone.")
    end = TimeField(required=False, help_text="ISO 8601; give this or a duration.")
    duration = DurationField(required=False)
    purpose = PlainTextField(label="purpose", max_length=200, required=False, allow_blank=True, default="")
    cpu_cores = serializers.IntegerField(
        min_value=0, max_value=1_000_000, required=False, default=0,
        help_text="CPU cores of the server's pool, with the GPUs or alone (a server without devices then books only the share).",
    )
    memory_gib = serializers.IntegerField(min_value=0, max_value=1_000_000_000, required=False, default=0, help_text="GiB of the server's memory pool.")
    source = serializers.ChoiceField(choices=CLIENT_SOURCES, default=Booking.Source.API.value)

    def validate(self, data):
        data["end"] = self._end_from(data, data["start"])
        return resolve_target_fields(data)


class ClaimSerializer(serializers.Serializer):
    server = NameOrIdField(required=True, allow_null=False, help_text="A server by name or id.")
    devices = DevicesField()
    duration = DurationField()
    cpu_cores = serializers.IntegerField(
        min_value=0, max_value=1_000_000, required=False, default=0, help_text="CPU cores of the server's pool, with the GPUs or alone.",
    )
    memory_gib = serializers.IntegerField(min_value=0, max_value=1_000_000_000, required=False, default=0, help_text="GiB of the server's memory pool.")
    purpose = PlainTextField(label="purpose", max_length=200, required=False, allow_blank=True, default="")
    source = serializers.ChoiceField(choices=CLIENT_SOURCES, default=Booking.Source.API.value)

    def validate(self, data):
        return resolve_target_fields(data)


class DeclineSerializer(serializers.Serializer):
    reason = PlainTextField(label="reason", max_length=500, required=False, allow_blank=True, default="", help_text="Shown to the member.")


class ExtendSerializer(serializers.Serializer):
    duration = DurationField(required=False, help_text="How much longer, e.g. 1h.")
    end = TimeField(required=False, help_text="The new end, ISO 8601; without an offset, in your time zone.")

    def validate(self, data):
        if ("end" in data) == ("duration" in data):
            raise serializers.ValidationError({"duration": ["Give either a duration to extend by (e.g. 1h) or a new end time."]})
        return data


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})
    name = PlainTextField(label="token name", max_length=100, required=False, allow_blank=True, default="cli", help_text="Where the token is used; default 'cli'.")


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The key; shown this once, only a hash of it is stored.")
    name = serializers.CharField()
    prefix = serializers.CharField()


def resolve_target_fields(data):
    """Servers and rooms by name or id, device ids as indices of the named server: what create_booking takes."""
    server, room, devices = data.get("server"), data.get("room"), data.get("devices")
    if server is not None and (_is_number(server.strip()) or (devices is not None and "ids" in devices)):
        data["server"] = find_by_name_or_id(Server.objects, server) or server  # else the service looks the name up
    if room is not None:
        data["room"] = find_by_name_or_id(Room.objects, room) or room
        if devices is not None:
            raise serializers.ValidationError({"devices": ["GPUs belong to a server; a room is booked as a whole."]})
    if devices is None:
        data["devices"] = None
    elif "indices" in devices:
        data["devices"] = devices["indices"]
    elif isinstance(data.get("server"), Server):
        data["devices"] = _indices_of(data["server"], devices["ids"])
    else:
        data["devices"] = None  # the server is unknown: the service says so, naming the servers there are
    return data


def find_by_name_or_id(queryset, key):
    """The object named `key` (any case), else the one with id `key`; None if neither.

    An unknown name passed on to the services gets their message, which lists the known ones.
    """
    key = key.strip()
    if "\x00" in key:  # PostgreSQL refuses NUL in text; no name holds one
        return None
    found = queryset.filter(name__iexact=key).first()
    if found is None and _is_number(key) and int(key) <= BIGINT_MAX:
        found = queryset.filter(pk=int(key)).first()
    return found


def _indices_of(server, ids):
    """The indices of device ids that must all be GPUs of `server`."""
    wanted = [device_id for device_id in dict.fromkeys(ids)]
    in_range = [device_id for device_id in wanted if 0 < device_id <= BIGINT_MAX]
    found = dict(Device.objects.filter(pk__in=in_range, server=server).values_list("pk", "index"))
    missing = [device_id for device_id in wanted if device_id not in found]
    if missing:
        listed = ", ".join(str(device_id) for device_id in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        noun = "Device id" if len(missing) == 1 else "Device ids"
        verb = "is not a GPU" if len(missing) == 1 else "are not GPUs"
        has = server.devices.count()
        raise serializers.ValidationError(
            {"devices": [f"{noun} {listed} {verb} of {server.name} (it has {has} GPU{'' if has == 1 else 's'}); see devices/?server={server.name}."]}
        )
    return sorted(found[device_id] for device_id in wanted)


# --- for the schema only: the shapes views build by hand -----------------------------------


class ConflictSerializer(serializers.Serializer):
    booking = serializers.IntegerField()
    user = serializers.CharField()
    server = serializers.CharField(allow_null=True)
    devices = serializers.CharField(allow_null=True)
    whole_server = serializers.BooleanField()
    room = serializers.CharField(allow_null=True)
    start = UTCTimeField()
    end = UTCTimeField()
    purpose = serializers.CharField(allow_blank=True)
    message = serializers.CharField()


class LimitSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Limit.Kind.choices, help_text="Which kind of fair-use rule.")
    source = serializers.CharField(help_text="In whose name it holds: a group's name, or 'You (personal limit)'.")
    says = serializers.CharField(help_text="The rule in words, e.g. 'at most 2 GPUs at once on thalys'.")


class ErrorBodySerializer(serializers.Serializer):
    # Declared in get_fields: a field named "fields" would shadow Serializer.fields.
    def get_fields(self):
        return {
            "code": serializers.ChoiceField(choices=CODES, help_text="What kind of refusal; see docs/api-contract.md for each."),
            "message": serializers.CharField(help_text="One sentence a person can read."),
            "fields": serializers.DictField(
                child=serializers.ListField(child=serializers.CharField()), required=False,
                help_text="Messages by the name of the input at fault.",
            ),
            "limit": LimitSerializer(required=False, help_text="limit_exceeded (409) and not_allowed_here (403): the fair-use rule in the way."),
            "conflicts": ConflictSerializer(many=True, required=False, help_text="The bookings in the way (409)."),
        }


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


class BusySerializer(serializers.Serializer):
    booking = serializers.IntegerField()
    user = serializers.CharField()
    user_name = serializers.CharField()
    start = UTCTimeField()
    end = UTCTimeField()
    purpose = serializers.CharField(allow_blank=True)
    pending = serializers.BooleanField(required=False, help_text="Present (true) only while the booking awaits staff approval; it holds the units meanwhile.")


class PoolAmountSerializer(serializers.Serializer):
    capacity = serializers.IntegerField(help_text="How much the server declares.")
    booked = serializers.IntegerField(help_text="The most booked at one instant of the window (a whole-server booking: all).")
    free = serializers.IntegerField(help_text="What one more booking may take throughout the window: capacity - booked.")


class PoolSerializer(serializers.Serializer):
    cpu_cores = PoolAmountSerializer(allow_null=True, help_text="CPU cores; null when the server does not pool them.")
    memory_gib = PoolAmountSerializer(allow_null=True, help_text="Memory in GiB; null when the server does not pool it.")


class UnitAvailabilitySerializer(serializers.Serializer):
    unit = serializers.CharField(help_text="'thalys:0' for a GPU, 'thalys' for a whole server, 'room Lab 2' for a room.")
    kind = serializers.ChoiceField(choices=["gpu", "server", "room"])
    server = serializers.CharField(allow_null=True)
    device = serializers.IntegerField(allow_null=True, help_text="The GPU's index on its server.")
    room = serializers.CharField(allow_null=True)
    busy = BusySerializer(many=True, help_text="The bookings holding the unit in the window, by start; [] when free.")
    pool = PoolSerializer(
        required=False, help_text="Only on a server declaring pooled CPU cores or memory: how much is booked and free in the window."
    )


class AvailabilitySerializer(serializers.Serializer):
    start = UTCTimeField()
    end = UTCTimeField()
    units = UnitAvailabilitySerializer(many=True)


class AvailabilityQuerySerializer(serializers.Serializer):
    start = TimeField(required=False, help_text="Window start, ISO 8601; default now.")
    end = TimeField(required=False, help_text="Window end; default 24 h after the start; at most 31 days after it.")
    server = PlainTextField(label="server's name", required=False, max_length=200, help_text="Only this server's GPUs and the server itself.")
    room = PlainTextField(label="room's name", required=False, max_length=200, help_text="Only this room (with server: both).")

    def validate(self, data):
        start = data.get("start") or timezone.now()
        end = data.get("end") or start + DEFAULT_WINDOW
        if end <= start:
            raise serializers.ValidationError({"end": ["The end must be after the start."]})
        if end - start > MAX_WINDOW:
            raise serializers.ValidationError({"end": [f"A window spans at most {MAX_WINDOW.days} days."]})
        return {**data, "start": start, "end": end}


def _is_number(text):
    """Plain ASCII digits: str.isdigit() is also true for '³', which int() refuses."""
    return text.isascii() and text.isdigit()


# --- recurring bookings (series) ---------------------------------------------------------------


class SeriesCreateSerializer(BookingCreateSerializer):
    """A booking's fields (the first date's start and end) plus how it repeats and until when."""

    repeat = serializers.CharField(
        required=False, max_length=200, help_text="How it repeats, as people write it: daily, weekdays, weekly, every 2 weeks, weekly on tue,thu.",
    )
    rrule = serializers.CharField(required=False, max_length=200, help_text="Or an RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=TU (UNTIL or COUNT allowed).")
    until = serializers.DateField(required=False, help_text="The last date a booking may start on, in your time zone.")
    count = serializers.IntegerField(required=False, min_value=1, max_value=10_000, help_text="Or how many times (instead of until).")
    on_conflict = serializers.ChoiceField(
        choices=("ask", "skip"), default="ask",
        help_text="ask: if any date is taken, book nothing and answer 409 listing them; skip: book the others.",
    )

    def validate(self, data):
        from ..recurrence import parse_rrule

        if ("repeat" in data) == ("rrule" in data):
            raise serializers.ValidationError({"repeat": ["Give repeat (e.g. weekly) or rrule (e.g. FREQ=WEEKLY;BYDAY=TU): one of the two."]})
        if "rrule" in data:
            try:
                parse_rrule(data["rrule"])
            except ParseError as error:
                raise serializers.ValidationError({"rrule": [str(error)]}) from None
            data["repeat"] = "RRULE:" + data.pop("rrule").strip().removeprefix("RRULE:").removeprefix("rrule:")
        return super().validate(data)


class RefusedDateSerializer(serializers.Serializer):
    start = UTCTimeField()
    end = UTCTimeField()
    code = serializers.ChoiceField(choices=REFUSAL_CODES, help_text="Why this date cannot be booked.")
    message = serializers.CharField()
    conflicts = ConflictSerializer(many=True, required=False, help_text="For a conflict: the bookings in the way.")


class SeriesSerializer(serializers.Serializer):
    """A recurring booking: its rule, and its dates as bookings (each can be cancelled or changed alone)."""

    id = serializers.IntegerField()
    user = serializers.CharField(help_text="The owner's user name.")
    rule = serializers.CharField(help_text="RFC 5545 RRULE without UNTIL (until is apart).")
    description = serializers.CharField(help_text="The repeat in words, e.g. 'every week on Tuesday at 10:00 (Europe/Berlin) until 15 Dec 2026'.")
    first_date = serializers.DateField()
    start_time = serializers.TimeField(help_text="Each date's wall-clock start, in time_zone.")
    length = serializers.CharField(help_text="Each booking's length, e.g. 1h.")
    time_zone = serializers.CharField()
    until = serializers.DateField(allow_null=True)
    purpose = serializers.CharField(allow_blank=True)
    created_at = UTCTimeField()
    bookings = BookingSerializer(many=True, help_text="Its dates, soonest first, cancelled ones included.")
    skipped = RefusedDateSerializer(many=True, required=False, help_text="On creation with on_conflict=skip: the dates not booked, and why.")

    def to_representation(self, series):
        from ..parsing import format_duration

        bookings = self.context.get("bookings")
        if bookings is None:
            bookings = series.bookings.all()
        data = {
            "id": series.pk, "user": series.user.get_username(), "rule": series.rule, "description": series.describe(),
            "first_date": series.first_date.isoformat(), "start_time": series.start_time.strftime("%H:%M"),
            "length": format_duration(series.length), "time_zone": series.time_zone,
            "until": series.until.isoformat() if series.until else None, "purpose": series.purpose,
            "created_at": utc_iso(series.created_at),
            "bookings": [BookingSerializer(booking, context=self.context).data for booking in bookings],
        }
        if "skipped" in self.context:
            data["skipped"] = [refused_date(refusal) for refusal in self.context["skipped"]]
        return data


class SeriesErrorBodySerializer(ErrorBodySerializer):
    def get_fields(self):
        return {
            **super().get_fields(),
            "refused": RefusedDateSerializer(many=True, required=False, help_text="series_conflict (409): each date that cannot be booked, and why."),
            "total": serializers.IntegerField(required=False, help_text="How many dates the repeat gives."),
            "bookable": serializers.IntegerField(required=False, help_text="How many of them could be booked (on_conflict=skip)."),
        }


class SeriesErrorSerializer(serializers.Serializer):
    error = SeriesErrorBodySerializer()
