"""Query filters for the lists: bookings (mine, user, server, device, room, status, state, window) and devices."""
from datetime import UTC

import django_filters
from django import forms
from django.db.models import Q
from django.utils import timezone
from django_filters.widgets import BooleanWidget
from drf_spectacular.utils import extend_schema_field

from ..models import Allocation, Booking, Device
from ..text import text_problem
from .serializers import BIGINT_MAX, PLAIN_TEXT_PATTERN, STATES, TIME_SCHEMA, written_in_range


class NameFormField(forms.CharField):
    """A name to filter by: one line of plain text, as every name here is (reservations.text)."""

    def to_python(self, value):
        problem = text_problem(value, label="name") if isinstance(value, str) else None
        if problem:
            raise forms.ValidationError(problem, code="control_character")
        return super().to_python(value)


@extend_schema_field({"type": "string", "pattern": PLAIN_TEXT_PATTERN})
class NameFilter(django_filters.CharFilter):
    field_class = NameFormField


class TimeFormField(django_filters.fields.IsoDateTimeField):
    """ISO 8601; without an offset read in the member's zone (the view activated it)."""

    def to_python(self, value):
        if not written_in_range(value):
            raise forms.ValidationError("Times must lie between 1970 and 2999.", code="range")
        try:
            moment = super().to_python(value)
            # In UTC: PostgreSQL refuses an offset beyond ±15:59 (-20:22), which ISO 8601 and Python allow.
            return moment.astimezone(UTC) if moment is not None else None
        except OverflowError:  # 2999-12-31T23:00-05:00 in a zone east of UTC
            raise forms.ValidationError("Times must lie between 1970 and 2999.", code="range") from None


@extend_schema_field(TIME_SCHEMA)
class TimeFilter(django_filters.IsoDateTimeFilter):
    field_class = TimeFormField


class IdFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(*args, **kwargs)


def _name_or_id(field):
    """A filter on a related object's name (any case), or its id when the value is a number."""

    def method(queryset, name, value):
        value = value.strip()
        match = Q(**{f"{field}__name__iexact": value})
        if value.isascii() and value.isdigit() and int(value) <= BIGINT_MAX:
            match |= Q(**{f"{field}_id": int(value)})
        return queryset.filter(match)

    return method


class StrictFilterSet(django_filters.FilterSet):
    """django-filter ignores an empty or unreadable value (`?start=`, `?mine=maybe`); the schema types these
    filters, so here such a value is refused (400) instead. Text filters (a name) take any text."""

    def is_valid(self):
        super().is_valid()
        for name, field in self.filters.items():
            if isinstance(field, django_filters.CharFilter) or name not in self.data or name in self.form.errors:
                continue
            if self.form.cleaned_data.get(name) in (None, ""):
                given = self.data[name]
                self.form.add_error(name, "Give a value, or leave the filter out." if given == "" else f"'{given[:40]}' is not a value this filter takes.")
        return not self.form.errors


class BookingFilter(StrictFilterSet):
    mine = django_filters.BooleanFilter(method="filter_mine", widget=BooleanWidget, help_text="1: only your bookings.")
    user = NameFilter(field_name="user__username", lookup_expr="iexact", help_text="A member's user name.")
    server = NameFilter(method=_name_or_id("server"), help_text="A server's name (or id).")
    device = extend_schema_field(
        {"type": "integer", "minimum": 1, "description": "A device id: the bookings holding that GPU, whole-server ones included."}
    )(IdFilter(method="filter_device"))
    room = NameFilter(method=_name_or_id("room"), help_text="A room's name (or id).")
    status = django_filters.ChoiceFilter(choices=Booking.Status.choices)
    state = django_filters.ChoiceFilter(choices=[(state, state) for state in STATES], method="filter_state")
    start = TimeFilter(field_name="end", lookup_expr="gt", help_text="With end: bookings overlapping [start, end). ISO 8601.")
    end = TimeFilter(field_name="start", lookup_expr="lt", help_text="With start: bookings overlapping [start, end). ISO 8601.")

    class Meta:
        model = Booking
        fields = []

    def filter_mine(self, queryset, name, value):
        return queryset.filter(user=self.request.user) if value else queryset

    def filter_device(self, queryset, name, value):
        # A subquery rather than a join: a booking then appears once, whatever it holds.
        return queryset.filter(pk__in=Allocation.objects.filter(unit__device_id=value).values("booking_id"))

    def filter_state(self, queryset, name, value):
        now = timezone.now()
        confirmed = queryset.filter(status=Booking.Status.CONFIRMED)
        if value == "upcoming":
            return confirmed.filter(start__gt=now)
        if value == "running":
            return confirmed.at(now)
        if value == "ended":
            return confirmed.filter(end__lte=now)
        return queryset.filter(status=value)  # cancelled, released, pending


class DeviceFilter(StrictFilterSet):
    server = NameFilter(method=_name_or_id("server"), help_text="A server's name (or id).")

    class Meta:
        model = Device
        fields = []
