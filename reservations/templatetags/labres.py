"""Template filters for times and names, always in the member's active time zone."""
from django import template
from django.utils import timezone

from reservations.models import member_name
from reservations.parsing import format_duration, format_moment, format_span

register = template.Library()


@register.filter
def when(value):
    """'Mon 23 Nov 14:00' in the active time zone."""
    if not value:
        return ""
    return format_moment(timezone.localtime(value))


@register.filter
def clock(value):
    """'14:00' in the active time zone."""
    if not value:
        return ""
    return timezone.localtime(value).strftime("%H:%M")


@register.simple_tag
def span(start, end):
    """'Mon 23 Nov 14:00–16:00 CET', repeating the date only when it changes."""
    return format_span(start, end)


@register.simple_tag
def zone_name():
    """The active time zone's name, e.g. Europe/Berlin."""
    return timezone.get_current_timezone_name()


@register.filter
def member(user):
    return member_name(user)


@register.filter
def duration(delta):
    return format_duration(delta)


@register.filter
def state(booking):
    return booking.state()


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if mapping else None


@register.filter
def mib(value):
    """GPU memory given in MiB, as people read it: '800 MiB', '61.4 GiB'; '—' when unknown."""
    if value is None or value == "":
        return "—"
    value = float(value)
    return f"{value / 1024:.1f} GiB" if value >= 1024 else f"{value:.0f} MiB"
