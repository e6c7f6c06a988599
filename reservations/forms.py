"""The booking form: what to book (GPUs of a server, a whole server or a room), when, and why.

The form reads what people type into the arguments of services.create_booking; the service
stays the authority (unknown servers, missing GPUs and overlaps are its to refuse).
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.utils import timezone

from .models import Device, Room, Server
from .parsing import (
    ParseError,
    format_device_set,
    format_duration,
    parse_cpu_cores,
    parse_device_set,
    parse_duration,
    parse_memory,
)

QUICK_LENGTHS = ["30m", "1h", "2h", "4h", "8h", "12h"]
REPEAT_CHOICES = [("never", "Never"), ("daily", "Daily"), ("weekdays", "Weekdays (Mon–Fri)"), ("weekly", "Weekly"), ("every 2 weeks", "Every 2 weeks")]
LOCAL_MINUTE = "%Y-%m-%dT%H:%M"  # what <input type=datetime-local> sends and shows
SUMMARY_NAMES = {"gpus": "GPUs", "devices": "GPUs", "length": "Length", "duration": "Length", "end": "End", "memory_gib": "Memory"}
REACH = timedelta(days=3650)  # how far from now a date may be; keeps sums of dates and lengths in range


@dataclass
class Catalog:
    """What can be booked: active servers with their active GPUs, and active rooms."""

    servers: list
    rooms: list

    @classmethod
    def load(cls):
        gpus = Prefetch("devices", queryset=Device.objects.filter(active=True).order_by("index"))
        return cls(servers=list(Server.objects.filter(active=True).prefetch_related(gpus)), rooms=list(Room.objects.filter(active=True)))

    def server_named(self, name):
        name = (name or "").strip().lower()
        return next((server for server in self.servers if server.name.lower() == name), None)

    def room_named(self, name):
        name = (name or "").strip().lower()
        return next((room for room in self.rooms if room.name.lower() == name), None)


class LocalDateTimeField(forms.DateTimeField):
    """A date and time from <input type=datetime-local>, read in the member's time zone."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_MINUTE)

    def validate(self, value):
        super().validate(value)
        if value is not None and abs(value - timezone.now()) > REACH:
            raise ValidationError("That is more than ten years away; check the year.", code="out_of_reach")


class BookingForm(forms.Form):
    # "shares": CPU cores and/or memory of a server's pools, without GPUs (see services.create_booking).
    WHAT_CHOICES = (("gpus", "GPUs"), ("server", "Whole server"), ("shares", "CPU & memory"), ("room", "Room"))

    what = forms.ChoiceField(label="What", choices=WHAT_CHOICES, initial="gpus", widget=forms.RadioSelect)
    # Server and room are names, checked by the service, whose messages list what exists.
    server = forms.CharField(required=False, widget=forms.Select)
    gpus = forms.MultipleChoiceField(label="GPUs", required=False, widget=forms.CheckboxSelectMultiple)
    devices = forms.CharField(
        label="Or type GPU indices", required=False, max_length=100, help_text="e.g. 0-2,5 — wins over the ticked boxes."
    )
    room = forms.CharField(required=False, widget=forms.Select)
    # Shares of the server's pooled capacities, with the GPUs or alone; read by reservations.parsing.
    cpu_cores = forms.CharField(label="CPU cores", required=False, max_length=20, widget=forms.TextInput(attrs={"inputmode": "numeric"}))
    memory_gib = forms.CharField(label="Memory (GiB)", required=False, max_length=40, help_text="e.g. 64, 64G or 1T")
    start = LocalDateTimeField()
    length = forms.ChoiceField(label="Length", required=False, choices=[(v, v) for v in QUICK_LENGTHS], initial="1h", widget=forms.RadioSelect)
    duration = forms.CharField(label="Other length", required=False, max_length=20, help_text="e.g. 45m, 3h30m, 2d")
    end = LocalDateTimeField(label="Or until", required=False)
    purpose = forms.CharField(required=False, max_length=200, help_text="Optional; others see it on the timeline.")
    # A recurring booking: the values are what recurrence.parse_repeat reads.
    repeat = forms.ChoiceField(label="Repeat", required=False, choices=REPEAT_CHOICES, initial="never")
    until = forms.DateField(
        label="Repeat until", required=False, widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The last date it may repeat on (included).",
    )

    def __init__(self, *args, catalog=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.catalog = catalog or Catalog.load()
        self.fields["server"].widget.choices = [(s.name, s.name) for s in self.catalog.servers]
        self.fields["room"].widget.choices = [(r.name, r.name) for r in self.catalog.rooms]
        self.fields["gpus"].choices = [(f"{s.name}:{d.index}", str(d.index)) for s in self.catalog.servers for d in s.devices.all()]
        self.fields["start"].help_text = f"Your time zone: {timezone.get_current_timezone_name()}"
        self.length_field = "length"  # the field the end came from, for errors about the length

    @classmethod
    def from_query(cls, query, *, now=None):
        """An unbound form prefilled from a link (?server=thalys&devices=0-1&start=...); returns (form, data, notes).

        `data` is the prefill as the form would post it; `notes` say which parts were ignored and why.
        """
        catalog = Catalog.load()
        form = cls(catalog=catalog)
        data, notes = form._read_query(query, now or timezone.now())
        form.initial = data
        return form, data, notes

    def _read_query(self, query, now):
        catalog, notes = self.catalog, []
        data = {
            "what": "gpus",
            "server": catalog.servers[0].name if catalog.servers else "",
            "room": catalog.rooms[0].name if catalog.rooms else "",
            "gpus": [],
            "devices": "",
            "start": timezone.localtime(now).strftime(LOCAL_MINUTE),
            "length": "1h",
            "duration": "",
            "end": "",
            "purpose": query.get("purpose", "")[:200],
            "cpu_cores": "",
            "memory_gib": "",
        }
        if query.get("room"):
            room = catalog.room_named(query["room"])
            if room:
                data.update(what="room", room=room.name)
            else:
                notes.append(f"There is no room '{query['room']}' to book; choose one below.")
        server = None
        if query.get("server"):
            server = catalog.server_named(query["server"])
            if server:
                data.update(what="gpus" if server.devices.all() else "server", server=server.name)
            else:
                notes.append(f"There is no server '{query['server']}' to book; choose one below.")
        if server and "devices" in query:
            data.update(self._read_devices(server, query["devices"]))
        known_gpus = {value for value, _ in self.fields["gpus"].choices}
        if hasattr(query, "getlist") and query.getlist("gpus"):
            data["gpus"] = [value for value in query.getlist("gpus") if value in known_gpus]
            if data["gpus"] and not server:  # the ticked boxes say which server's group to show
                data["server"] = data["gpus"][0].rpartition(":")[0]
        for name in ("cpu_cores", "memory_gib"):
            if query.get(name):
                data[name] = query[name][:40]
        ticked_in_link = hasattr(query, "getlist") and query.getlist("gpus")
        if server and (data["cpu_cores"] or data["memory_gib"]) and not query.get("devices") and not ticked_in_link:
            data["what"] = "shares"  # amounts without GPUs: a share-only booking
        if query.get("what") in dict(self.WHAT_CHOICES):
            data["what"] = query["what"]
        for name in ("start", "end"):
            if query.get(name):
                try:
                    value = self.fields[name].clean(query[name])
                    data[name] = timezone.localtime(value).strftime(LOCAL_MINUTE)
                except ValidationError:
                    notes.append(f"The {name} '{query[name]}' in the link is not a date and time; it was left out.")
        self._from_now_on(data, now)
        if query.get("length") in QUICK_LENGTHS:
            data["length"] = query["length"]
        if query.get("duration"):
            data.update(duration=query["duration"][:20], length="")
        if data["end"]:
            data.update(length="", duration="")
        return data, notes

    @staticmethod
    def _from_now_on(data, now):
        """A link's start in the past (a span dragged over the past on the timeline) starts now instead;
        an end that is past too is dropped, so the quick length applies."""
        zone = timezone.get_current_timezone()
        start = datetime.strptime(data["start"], LOCAL_MINUTE).replace(tzinfo=zone)
        if start >= now - parse_duration(settings.BOOKING_PAST_GRACE):
            return
        from_now = timezone.localtime(now).replace(second=0, microsecond=0)
        data["start"] = from_now.strftime(LOCAL_MINUTE)
        if data["end"] and datetime.strptime(data["end"], LOCAL_MINUTE).replace(tzinfo=zone) <= from_now:
            data["end"] = ""

    @staticmethod
    def _read_devices(server, text):
        """devices= in a link: empty means the whole server; GPUs the server has are ticked, anything else is typed."""
        if not text.strip():
            return {"what": "server"}
        try:
            indices = parse_device_set(text)
        except ParseError:
            return {"what": "gpus", "devices": text[:100]}
        has = {device.index for device in server.devices.all()}
        if set(indices) <= has:
            return {"what": "gpus", "gpus": [f"{server.name}:{i}" for i in indices]}
        return {"what": "gpus", "devices": text[:100]}

    # --- validation ------------------------------------------------------------------------

    def clean_cpu_cores(self):
        text = self.cleaned_data.get("cpu_cores", "").strip()
        try:
            return parse_cpu_cores(text) if text else 0
        except ParseError as error:
            raise ValidationError(str(error), code="cpu_cores") from None

    def clean_memory_gib(self):
        text = self.cleaned_data.get("memory_gib", "").strip()
        try:
            return parse_memory(text) if text else 0
        except ParseError as error:
            raise ValidationError(str(error), code="memory_gib") from None

    def amounts(self):
        """The shares asked for, as create_booking takes them: {"cpu_cores": 16, "memory_gib": 64}."""
        data = getattr(self, "cleaned_data", {})
        if data.get("what") not in ("gpus", "shares"):
            return {"cpu_cores": 0, "memory_gib": 0}
        return {"cpu_cores": data.get("cpu_cores") or 0, "memory_gib": data.get("memory_gib") or 0}

    def _clean_amounts(self, cleaned):
        """Amounts belong with GPUs or alone ("CPU & memory"); a whole server or a room comes without them."""
        asked = cleaned.get("cpu_cores") or cleaned.get("memory_gib")
        what = cleaned.get("what")
        if what == "shares" and not asked and "cpu_cores" not in self.errors and "memory_gib" not in self.errors:
            self.add_error("cpu_cores", "Ask for CPU cores or memory (or both), e.g. 16 cores and 64G; or choose “GPUs”.")
        elif what == "server" and asked:
            self.add_error("cpu_cores", "A whole server comes with all its cores and memory: clear the amounts, or choose “CPU & memory”.")
        elif what == "room" and asked:
            self.add_error("cpu_cores", "A room has no CPU cores or memory to share: clear the amounts.")

    def clean(self):
        cleaned = super().clean()
        self._clean_amounts(cleaned)
        self.target = self._clean_target(cleaned)
        self._clean_times(cleaned)
        if self.repeats and not cleaned.get("until") and "until" not in self.errors:
            self.add_error("until", "Choose the last date it repeats on, or set Repeat to Never.")
        return cleaned

    @property
    def repeats(self):
        return self.cleaned_data.get("repeat") not in (None, "", "never")

    def _clean_target(self, cleaned):
        what = cleaned.get("what")
        server, room = cleaned.get("server", ""), cleaned.get("room", "")
        typed, ticked = cleaned.get("devices", "").strip(), cleaned.get("gpus", [])
        if what == "room":
            if typed or ticked:
                self.add_error("devices", "A room has no GPUs: clear the GPUs, or choose “GPUs” above.")
            if not room:
                self.add_error("room", "Choose a room.")
            return {"room": room}
        if what == "shares":
            if typed or ticked:
                self.add_error("devices", "You chose CPU & memory alone: clear the GPUs, or choose “GPUs” to book them with the amounts.")
            if not server:
                self.add_error("server", "Choose a server.")
            return {"server": server, "devices": None}
        if what == "server":
            if typed or ticked:
                self.add_error("devices", "You chose the whole server: clear the GPUs, or choose “GPUs” above.")
            if not server:
                self.add_error("server", "Choose a server.")
            return {"server": server, "devices": None}
        if what != "gpus":
            return None  # the field has its error already
        if typed:
            if not server:
                self.add_error("server", "Choose a server.")
            return {"server": server, "devices": typed}
        on = {}
        for value in ticked:
            name, _, index = value.rpartition(":")
            on.setdefault(name, []).append(int(index))
        if not on:
            self.add_error("devices", "Tick at least one GPU or type indices like 0-1; or choose “Whole server”.")
            return None
        if len(on) > 1:
            self.add_error("gpus", f"You ticked GPUs on {' and '.join(sorted(on))}; one booking holds GPUs of one server.")
            return None
        # Without the page's script every server's boxes show; the ticked ones say which server is meant.
        (name, indices), = on.items()
        return {"server": name, "devices": format_device_set(indices)}

    def _clean_times(self, cleaned):
        start = cleaned.get("start")
        end, length = None, None
        if cleaned.get("end"):
            end, self.length_field = cleaned["end"], "end"
        elif cleaned.get("duration"):
            self.length_field = "duration"
            try:
                length = parse_duration(cleaned["duration"])
            except ParseError as error:
                self.add_error("duration", str(error))
                return
        elif cleaned.get("length"):
            length = parse_duration(cleaned["length"])
        elif "end" not in self.errors and "duration" not in self.errors:
            self.add_error("length", "Choose a length, type one, or give an end time.")
            return
        if start is None or (end is None and length is None):
            return
        end = end or start + length
        cleaned["end_at"] = end
        # The service checks these too; checking here lets the live check say so before submitting.
        if end <= start:
            self.add_error(self.length_field, "The end must be after the start.")
        elif end - start > parse_duration(settings.BOOKING_MAX_LENGTH):
            longest = parse_duration(settings.BOOKING_MAX_LENGTH)
            self.add_error(
                self.length_field,
                f"A booking may last at most {format_duration(longest)}; this one would last {format_duration(end - start)}.",
            )
        if start < timezone.now() - parse_duration(settings.BOOKING_PAST_GRACE):
            self.add_error("start", "The start is in the past; book from now on.")

    # --- what the views need -----------------------------------------------------------------

    def error_summary(self):
        """Each error as (the id of its field or None, 'Name: message'), in page order."""
        lines = [(None, message) for message in self.non_field_errors()]
        for field in self:
            name = SUMMARY_NAMES.get(field.name, field.label)
            lines.extend((field.auto_id, f"{name}: {message}") for message in field.errors)
        return lines

    def booking_kwargs(self):
        """The keyword arguments of services.create_booking, from a valid form."""
        data = self.cleaned_data
        return {**self.target, **self.amounts(), "start": data["start"], "end": data["end_at"], "purpose": data.get("purpose", "")}

    def series_kwargs(self):
        """The keyword arguments of services.create_series, from a valid form that repeats."""
        return {**self.booking_kwargs(), "repeat": self.cleaned_data["repeat"], "until": self.cleaned_data["until"]}

    def field_for(self, error):
        """The form field a service's BookingError belongs to; None for the form as a whole."""
        if error.field in ("repeat", "until", "count"):
            return "until" if error.field == "until" else "repeat"
        if error.field in ("end", "duration"):
            return self.length_field
        if error.field in ("cpu_cores", "memory_gib"):
            # A whole server takes all of the pools: its inputs are hidden then, the server's choice is at fault.
            return error.field if self.cleaned_data.get("what") in ("gpus", "shares") else "server"
        if error.field in ("server", "devices", "room", "start", "purpose"):
            if error.field == "server" and self.cleaned_data.get("what") == "room":
                return "room"
            return error.field
        return None

    def pools(self):
        """The servers that declare pooled capacities, as (name, 'thalys shares 128 CPU cores and 1024 GiB of memory.')."""
        found = []
        for server in self.catalog.servers:
            parts = [f"{server.cpu_cores} CPU cores" if server.cpu_cores is not None else "", f"{server.memory_gib} GiB of memory" if server.memory_gib is not None else ""]
            parts = [part for part in parts if part]
            if parts:
                found.append((server.name, f"{server.name} shares {' and '.join(parts)} among its bookings."))
        return found

    def gpu_groups(self):
        """Each active server with its GPUs as (value, device, short model name, ticked), for the grouped checkboxes."""
        ticked = set(self["gpus"].value() or [])
        return [
            (server, [(f"{server.name}:{d.index}", d, _short_model(d.model), f"{server.name}:{d.index}" in ticked) for d in server.devices.all()])
            for server in self.catalog.servers
        ]


def _short_model(model):
    """'NVIDIA GeForce RTX 4090' -> 'RTX 4090': the part that tells GPUs apart on a small screen."""
    return model.removeprefix("NVIDIA ").removeprefix("GeForce ").strip() or "GPU"
