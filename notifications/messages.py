"""Message texts: Django templates per event and kind of channel, which staff may override.

Files: templates/notifications/slack/<event>.txt (Slack mrkdwn), and
templates/notifications/email/<event>.subject.txt and <event>.txt, wrapped in message.html for the HTML part.
A MessageTemplate row for (event, channel) replaces the files. Every template gets the
variables in VARIABLES, with times shown in the recipient's time zone.
"""
import logging
import re
import zoneinfo
from dataclasses import dataclass, field

from django.conf import settings
from django.db import models
from django.db.models import Prefetch
from django.template import Context, Engine, Template, TemplateDoesNotExist
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_spaces_between_tags

from reservations.calendar import booking_calendar
from reservations.models import Allocation, Booking, member_name

from .events import EVENTS
from .models import MessageTemplate

logger = logging.getLogger(__name__)

# What every template can use; shown to staff beside the template editor in the admin.
VARIABLES = {
    "event": "The event's name, e.g. 'booking ends soon'.",
    "member": "The recipient's name (empty for a channel or webhook).",
    "user": "The recipient (a user; empty for a channel or webhook).",
    "booking": "The booking (id, purpose, start, end, status), when the event is about one.",
    "owner": "The name of the booking's owner; in Slack channels a mention (<@U…>) when they linked Slack.",
    "units": "What is booked, as people type it: thalys:0-1, thalys (whole server), room Lab 2.",
    "start": "The booking's start, in the recipient's time zone (use {% span start end %} or {{ start|when }}).",
    "end": "The booking's end, in the recipient's time zone.",
    "before_start": "For 'changed': the start it had before.",
    "before_end": "For 'changed': the end it had before.",
    "purpose": "The booking's purpose.",
    "actor": "The name of who made the change (the owner, or staff).",
    "by_someone_else": "True when the change was made by someone other than the owner.",
    "you_hold": "True when the recipient holds the booking (then write 'you', not their name).",
    "you_did": "True when the recipient made the change.",
    "holder": "The booking's owner as the recipient reads it: 'you', or their name (in Slack channels a mention).",
    "Holder": "The same at the start of a sentence: 'You', or their name.",
    "holders": "Whose booking: 'your', or e.g. 'Alice Liddell's'.",
    "Holders": "The same at the start of a sentence: 'Your', or e.g. 'Alice Liddell's'.",
    "own": "'your' when the recipient holds the booking, else 'their' (e.g. '{{ Holder }} cancelled {{ own }} booking').",
    "doer": "Who made the change as the recipient reads it: 'you', or their name.",
    "Doer": "The same at the start of a sentence: 'You', or their name.",
    "next_booking": "For 'followed': the booking that starts when the recipient's ends.",
    "next_owner": "For 'followed': the name of that booking's owner.",
    "next_units": "For 'followed': what that booking holds, e.g. thalys:0-1.",
    "alert": "For monitoring events: the alert (message, server, opened_at).",
    "alert_message": "For monitoring events: what was seen, e.g. 'Booking #42 (thalys:0-1) has used at most 2% of its GPUs for the last 30m.'",
    "server": "The server concerned, if any.",
    "server_name": "That server's name.",
    "time_zone": "The name of the time zone times are shown in.",
    "entry": "For waitlist events: the entry (what, length_text, offer_expires_at, position).",
    "length": "For waitlist events: how long the booking would last, e.g. 2h.",
    "expires": "For 'waitlist: your turn': when the offer runs out.",
    "why": "For 'waitlist: entry lapsed': why it ended.",
    "rule": "For recurring bookings: the repeat, e.g. 'every week on Tuesday at 10:00 (Europe/Berlin) until 15 Dec 2026'.",
    "dates": "For recurring bookings: (start, end) of each date booked or cancelled.",
    "skipped": "For 'recurring booking created': (start, end, why) of each date not booked.",
    "running": "For 'recurring booking cancelled': (start, end) of a date left running.",
    "links": "Absolute links: links.booking, links.extend, links.release, links.mine, links.book, links.profile, links.gpus, links.decide (staff), and links.claim for a waitlist offer.",
    "reason": "For 'declined': the reason staff gave (may be empty).",
}

# Text templates (Slack mrkdwn, e-mail text and subject) are not HTML: no autoescaping.
# Slack's own escaping of &, < and > is applied to member-written values instead (see below).
text_engine = Engine(
    dirs=[settings.BASE_DIR / "templates"],
    autoescape=False,
    libraries={"labres": "reservations.templatetags.labres"},
    builtins=["reservations.templatetags.labres"],
)

# Staff's HTML templates: autoescaped, with the same tags and filters as the text ones.
html_engine = Engine(autoescape=True, builtins=["reservations.templatetags.labres"])


@dataclass
class Occasion:
    """What a message is about; rendered once per recipient."""

    event: str
    booking: object = None
    alert: object = None
    by: object = None
    before: tuple | None = None
    next_booking: object = None
    extra: dict = field(default_factory=dict)


def slack_escape(text):
    """`text` as Slack shows it literally in mrkdwn (and in a message's top-level text): its &, < and >
    written as entities, so that no <!channel>, <@U…> mention or <https://…|link> can be formed.

    The one escape for every member-written text (purposes, names, reasons, server and room names)
    that goes into a Slack message or reply. plain_text objects (button labels) carry none.
    """
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackText:
    """A model as a Slack template sees it: every text it gives is escaped, so that a staff template
    writing {{ booking.purpose }} or {{ entry.user.first_name }} is as safe as {{ purpose }}."""

    def __init__(self, wrapped):
        self._wrapped = wrapped

    def __getattr__(self, name):
        if name.startswith("_"):  # templates cannot ask for these; copy and pickle may
            raise AttributeError(name)
        return slack_safe(getattr(self._wrapped, name))

    def __str__(self):
        return slack_escape(self._wrapped)

    def __eq__(self, other):
        return self._wrapped == (other._wrapped if isinstance(other, SlackText) else other)

    def __hash__(self):
        return hash(self._wrapped)


def slack_safe(value):
    """`value` for a Slack template: a text escaped, a model (or manager) seen through SlackText,
    a method's result and a list's items likewise; numbers, times and the rest as they are."""
    if isinstance(value, str):
        return slack_escape(value)
    if isinstance(value, (models.Model, models.Manager)):
        return SlackText(value)
    if isinstance(value, (list, tuple, models.QuerySet)):
        return [slack_safe(item) for item in value]
    if callable(value) and not isinstance(value, type):
        if getattr(value, "alters_data", False):
            return None  # a template must not save or delete, escaped or not

        def call(*args, **kwargs):
            return slack_safe(value(*args, **kwargs))

        return call
    return value


# Block Kit's limits: a section's text, and the blocks of one message.
SECTION_TEXT_LIMIT = 3000
MESSAGE_BLOCK_LIMIT = 50
# What a cut must not split: an entity, or a <…> link or mention.
_ATOMS = re.compile(r"&(?:amp|lt|gt);|<[^<>\n]*>")


def slack_sections(lines, limit=SECTION_TEXT_LIMIT):
    """Lines of mrkdwn (escaped already) grouped, in order, into texts of at most `limit` characters:
    cut between lines, and a line too long alone at a space, never inside an entity or a <…>.
    Returns the texts as lists of lines."""
    pieces, lines_here, size = [], [], 0
    for line in lines:
        for part in _cut(line, limit):
            if lines_here and size + 1 + len(part) > limit:
                pieces.append(lines_here)
                lines_here, size = [], 0
            size += len(part) + (1 if lines_here else 0)
            lines_here.append(part)
    if lines_here:
        pieces.append(lines_here)
    return pieces


def _cut(line, limit):
    parts = []
    while len(line) > limit:
        inside = set()
        for atom in _ATOMS.finditer(line, 0, limit + 200):
            inside.update(range(atom.start() + 1, atom.end()))
        cuts = [i for i in range(limit, 0, -1) if i not in inside]
        spaces = [i for i in cuts if line[i - 1] == " "]
        cut = (spaces or cuts or [limit])[0]
        parts.append(line[:cut].rstrip())
        line = line[cut:]
    parts.append(line)
    return parts


def link(name, *args, query=""):
    return f"{settings.SITE_URL}{reverse(name, args=args)}{query}"


def time_zone_of(user):
    name = ""
    if user is not None:
        name = getattr(getattr(user, "profile", None), "time_zone", "")
    try:
        return zoneinfo.ZoneInfo(name or settings.TIME_ZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def context_for(occasion, *, user=None, family="slack", destination=None):
    """The template variables for one recipient (a user) or one destination."""
    escape = slack_escape if family == "slack" else str
    booking, alert = occasion.booking, occasion.alert
    zone = time_zone_of(user)
    context = {
        "event": EVENTS[occasion.event].label,
        "member": escape(member_name(user)) if user is not None else "",
        "user": user,
        "time_zone": str(zone),
        "actor": escape(member_name(occasion.by)) if occasion.by is not None else "",
        "alert": alert,
        "links": {
            "mine": link("my-bookings"),
            "book": link("book"),
            "profile": link("profile"),
            "gpus": link("gpus"),
        },
        # Texts in extra (a series' rule, why a date was skipped or an entry lapsed) name others and their purposes.
        **({name: slack_safe(value) for name, value in occasion.extra.items()} if family == "slack" else occasion.extra),
    }
    if alert is not None:
        context["server"] = alert.server
        context["server_name"] = escape(alert.server.name)
        context["alert_message"] = escape(alert_text(alert, user))
    if booking is not None:
        owner = booking.user
        slack_id = getattr(getattr(owner, "profile", None), "slack_user_id", "")
        context.update(
            booking=booking,
            owner=f"<@{slack_id}>" if slack_id and destination is not None and family == "slack" else escape(member_name(owner)),
            units=escape(booking.what),
            start=booking.start,
            end=booking.end,
            purpose=escape(booking.purpose),
            server=booking.server,
            server_name=escape(booking.server.name) if booking.server_id else "",
            by_someone_else=occasion.by is not None and occasion.by.pk != owner.pk,
        )
        context.update(_as_read_by(user, context["owner"], owner, context["actor"], occasion.by))
        context["links"].update(
            booking=link("booking-detail", booking.pk),
            extend=link("booking-detail", booking.pk, query="#extend"),
            release=link("booking-detail", booking.pk, query="#release"),
            ics=link("booking-ics", booking.pk),
        )
        if occasion.before:
            context["before_start"], context["before_end"] = occasion.before
        # Approval: the staff page to decide on, and the reason a decline gave.
        context["links"]["decide"] = link("booking-decide", booking.pk)
        context["reason"] = escape(booking.decision_note)
    entry = occasion.extra.get("entry")
    if entry is not None:
        context.update(
            entry=entry, units=escape(entry.offered_what if entry.state == "offered" else entry.what),
            length=entry.length_text, expires=entry.offer_expires_at, purpose=escape(entry.purpose),
            server=entry.server, server_name=escape(entry.server.name) if entry.server_id else "",
        )
        context["links"]["claim"] = link("waitlist-claim", entry.pk, entry.token) if entry.token else link("my-bookings")
    if occasion.next_booking is not None:
        context["next_booking"] = occasion.next_booking
        context["next_owner"] = escape(member_name(occasion.next_booking.user))
        context["next_units"] = escape(occasion.next_booking.what)
    if family == "slack":  # the objects too, for templates that read their fields ({{ booking.purpose }})
        for name in ("user", "booking", "alert", "entry", "next_booking", "server"):
            context[name] = slack_safe(context.get(name))
    return context, zone


def _as_read_by(reader, owner_name, owner, actor_name, actor):
    """The owner and the actor as `reader` reads them: "you" for themselves, their names for others."""
    you_hold = reader is not None and reader.pk == owner.pk
    you_did = reader is not None and actor is not None and reader.pk == actor.pk
    return {
        "you_hold": you_hold,
        "you_did": you_did,
        "holder": "you" if you_hold else owner_name,
        "Holder": "You" if you_hold else owner_name,
        "holders": "your" if you_hold else f"{owner_name}'s",
        "Holders": "Your" if you_hold else f"{owner_name}'s",
        "own": "your" if you_hold else "their",
        "doer": "you" if you_did else actor_name,
        "Doer": "You" if you_did else actor_name,
    }


def alert_text(alert, reader):
    """The alert's message as `reader` reads it: the member it names is "you" to themselves.

    Alerts are written once, in the third person (monitoring/alerts.py), for the admin and for channels.
    """
    text = alert.message
    if reader is None:
        return text
    name = member_name(reader)
    text = text.replace(f"(booked by {name})", "(booked by you)")
    if alert.user_id != reader.pk:
        return text
    if alert.kind == "unbooked_use":
        for verb, yours in ((" runs process ", " run process "), (" runs processes ", " run processes ")):
            prefix = f"{name} (unix user {alert.unix_username}){verb}"
            if text.startswith(prefix):
                return f"You (unix user {alert.unix_username}){yours}{text[len(prefix):]}"
    return text


def overrides_for(event):
    """Staff's templates for an event, by channel family: one query per event emitted."""
    return {row.family: row for row in MessageTemplate.objects.filter(event=event)}


def render_text(source_or_name, context, zone):
    """Render a text template (a file name, or a staff override's source) in the recipient's zone."""
    with timezone.override(zone):
        if isinstance(source_or_name, Template):
            return source_or_name.render(Context(context, autoescape=False)).strip()
        return text_engine.get_template(source_or_name).render(Context(context, autoescape=False)).strip()


def render_html(name_or_template, context, zone):
    """Render an HTML template (autoescaped): a file name (empty if there is none) or a compiled override."""
    with timezone.override(zone):
        if isinstance(name_or_template, Template):
            return strip_spaces_between_tags(name_or_template.render(Context(context))).strip()
        try:
            template = get_template(name_or_template)
        except TemplateDoesNotExist:
            return ""
        return strip_spaces_between_tags(template.render(context)).strip()


def render(occasion, family, *, user=None, destination=None, overrides=None):
    """The payload of one outbox row: {"text", "blocks"} for Slack; {"subject", "text", "html"} for e-mail.

    A staff template that fails to render (the admin checks them, but data differ) gives way to
    the file template: a message must never stop the booking change that caused it.
    """
    context, zone = context_for(occasion, user=user, family=family, destination=destination)
    override = (overrides or {}).get(family)
    if override is not None:
        try:
            return _render(occasion, family, context, zone, override)
        except Exception:
            logger.exception("the staff template %s failed to render; using the file template", override)
    return _render(occasion, family, context, zone, None)


def _render(occasion, family, context, zone, override):
    event = occasion.event
    if family == "slack":
        text = render_text(text_engine.from_string(override.body) if override else f"notifications/slack/{event}.txt", context, zone)
        return {"text": text, "blocks": slack_blocks(occasion, text, context)}
    if override:
        subject = render_text(text_engine.from_string(override.subject or "[labres] {{ event }}"), context, zone)
        text = render_text(text_engine.from_string(override.body), context, zone)
        html = render_html(html_engine.from_string(override.html), {**context, "text": text}, zone) if override.html else ""
    else:
        subject = render_text(f"notifications/email/{event}.subject.txt", context, zone)
        text = render_text(f"notifications/email/{event}.txt", context, zone)
        html = render_html("notifications/email/message.html", {**context, "text": text}, zone)
    payload = {"subject": " ".join(subject.split()), "text": text, "html": html}
    if EVENTS[event].attach_ics and occasion.booking is not None and not occasion.extra.get("dates"):  # a series: its dates are listed
        # Built when sent (channels.Email), from the booking as it is then: a calendar gets the
        # latest times, and the booking's transaction does not pay for it.
        payload["attach_ics"] = True
    return payload


def booking_ics(booking_id):
    """The booking as an e-mail attachment: (filename, content, mimetype)."""
    allocations = Prefetch("allocations", queryset=Allocation.objects.select_related("unit__device"))
    booking = Booking.objects.select_related("user__profile", "server", "room").prefetch_related(allocations).get(pk=booking_id)
    # The same UID and SEQUENCE as in the member's feed: a calendar that has both keeps one event.
    content = booking_calendar(booking, base_url=settings.SITE_URL, viewer_id=booking.user_id).decode()
    return f"booking-{booking.pk}.ics", content, "text/calendar"


def slack_blocks(occasion, text, context):
    """Block Kit for a message: the text (in as many sections as it needs), then buttons where there
    is something to do, and where times are shown."""
    sections = slack_sections(text.split("\n"))
    room = MESSAGE_BLOCK_LIMIT - 3  # the buttons, the zone, and a note on what is left out
    links = context["links"]
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}} for lines in sections[:room]]
    if len(sections) > room:
        where = f"<{links['booking']}|the booking page>" if "booking" in links else f"<{links['mine']}|your bookings>"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"{len(sections) - room} more parts of this message are on {where}."}]})
    booking = occasion.booking
    buttons = []
    if occasion.event == "ends_soon" and booking is not None:
        buttons = [
            _button("Extend 1h", "booking_extend", f"{booking.pk}:1h", links["extend"], style="primary"),
            _button("Release now", "booking_release", str(booking.pk), links["release"], style="danger"),
        ]
    elif occasion.event == "waitlist_offer" and "entry" in occasion.extra:
        entry = occasion.extra["entry"]
        buttons = [_button("Claim", "waitlist_claim", f"{entry.pk}:{entry.token}", links["claim"], style="primary")]
    elif occasion.event == "approval_requested" and booking is not None and occasion.extra.get("series_id"):
        # A series: all its pending dates at once here; the decide page also decides each alone.
        count = len(occasion.extra.get("dates") or ())
        series_id = str(occasion.extra["series_id"])
        buttons = [
            _button(f"Approve all {count}", "series_approve", series_id, None, style="primary"),
            _button(f"Decline all {count}", "series_decline", series_id, None, style="danger"),
            _button("Decide each, or give a reason…", "booking_open", str(booking.pk), links["decide"]),
        ]
    elif occasion.event == "approval_requested" and booking is not None:
        # Staff decide here; the link button opens the decide page, for a decline with a reason.
        buttons = [
            _button("Approve", "booking_approve", str(booking.pk), None, style="primary"),
            _button("Decline", "booking_decline", str(booking.pk), None, style="danger"),
            _button("Decline with a reason…", "booking_open", str(booking.pk), links["decide"]),
        ]
    elif booking is not None:
        buttons = [_button("Open booking", "booking_open", str(booking.pk), links["booking"])]
    elif occasion.alert is not None:
        buttons = [_button("Live GPUs", "gpus_open", str(occasion.alert.pk), links["gpus"])]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"labres · times in {context['time_zone']}"}]})
    return blocks


def _button(label, action_id, value, url, style=None):
    button = {"type": "button", "text": {"type": "plain_text", "text": label}, "action_id": action_id, "value": value, "url": url}
    if url is None:
        del button["url"]  # an action only: Slack posts the click to the interaction endpoint
    if style:
        button["style"] = style
    return button
