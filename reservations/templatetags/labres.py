"""Template filters for times and names, always in the member's active time zone."""
from django import template
from django.utils import timezone

from reservations.models import member_name
from reservations.parsing import format_duration

register = template.Library()


@register.filter
def when(value):
    """'Mon 23 Nov 14:00' in the active time zone."""
    if not value:
        return ""
    return timezone.localtime(value).strftime("%a %d %b %H:%M")


@register.filter
def clock(value):
    """'14:00' in the active time zone."""
    if not value:
        return ""
    return timezone.localtime(value).strftime("%H:%M")


@register.simple_tag
def span(start, end):
    """'Mon 23 Nov 14:00–16:00 CET', repeating the date only when it changes."""
    start, end = timezone.localtime(start), timezone.localtime(end)
    end_text = end.strftime("%H:%M") if start.date() == end.date() else end.strftime("%a %d %b %H:%M")
    return f"{start:%a %d %b %H:%M}–{end_text} {end.tzname()}"


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
