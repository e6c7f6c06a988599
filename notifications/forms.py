"""Forms for what members choose (channels per event) and what staff write (destinations, message texts)."""
from dataclasses import dataclass
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.template import TemplateSyntaxError
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from reservations.models import Booking, Profile, Server

from .channels import CHANNELS, MEMBER_CHANNELS
from .events import EVENTS, MEMBER_EVENTS, STAFF_EVENTS, Event
from .messages import VARIABLES, Occasion, context_for, html_engine, render_html, render_text, text_engine
from .models import Destination, MessageTemplate, Preference
from .outbox import default_channels

# --- a member's channels per event ------------------------------------------------------------


def unreachable_reason(channel, user):
    """Why `channel` cannot reach `user`, in words the member can act on; "" when it can."""
    if CHANNELS[channel].reaches(user):
        return ""
    if channel == "slack_dm":
        if not settings.SLACK_BOT_TOKEN:
            return "Slack is not set up in this lab's labres"
        return "link your Slack account first"
    if channel == "email":
        return "add an e-mail address to your account first (staff can)"
    return "it cannot reach you"


def events_for(user):
    """The events a member may choose channels for: staff also hear about stale hosts."""
    return MEMBER_EVENTS + STAFF_EVENTS if user.is_staff else list(MEMBER_EVENTS)


@dataclass
class Cell:
    channel: str
    label: str
    id: str
    checked: bool
    disabled: bool


@dataclass
class Row:
    name: str  # the field's HTML name
    event: str
    label: str
    help: str
    on_by_default: bool
    cells: list
    errors: list


class PreferencesForm(forms.Form):
    """One field per event, its value the channels ticked; shown as a table (events × channels).

    What the member sees is what they chose (their Preference row) or else the default. Saving
    writes a row only for the events they changed, so untouched events keep following the
    default (a Slack message once they link Slack). A channel that cannot reach them is shown
    disabled; a value for it sent anyway is refused with an error on its row.
    """

    prefix = "notify"

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.reasons = {name: unreachable_reason(name, user) for name in MEMBER_CHANNELS}
        chosen = dict(Preference.objects.filter(user=user).values_list("event", "channels"))
        choices = [(name, CHANNELS[name].label) for name in MEMBER_CHANNELS]
        for event in events_for(user):
            shown = chosen[event] if event in chosen else default_channels(user, event)
            # A stored channel that cannot reach them now (Slack unlinked) is shown off; it stays
            # stored, and comes back when they link again, unless they change this row.
            initial = [name for name in shown if name in MEMBER_CHANNELS and not self.reasons[name]]
            self.fields[event] = forms.MultipleChoiceField(
                label=EVENTS[event].label, choices=choices, required=False, initial=initial,
                widget=forms.CheckboxSelectMultiple,
            )

    def clean(self):
        cleaned = super().clean()
        for event, channels in list(cleaned.items()):
            for name in channels:
                if self.reasons[name]:
                    self.add_error(event, f"{CHANNELS[name].label} cannot reach you: {self.reasons[name]}.")
        return cleaned

    def save(self):
        """Store the channels of each changed event; returns the events saved."""
        saved = []
        for event in self.changed_data:
            channels = [name for name in MEMBER_CHANNELS if name in self.cleaned_data[event]]
            Preference.objects.update_or_create(user=self.user, event=event, defaults={"channels": channels})
            saved.append(event)
        return saved

    def columns(self):
        """The table's columns: each member channel with why it is off, if it is."""
        return [{"name": name, "label": CHANNELS[name].label, "reason": self.reasons[name]} for name in MEMBER_CHANNELS]

    def rows(self):
        """The table's rows: each event with a checkbox cell per channel, ticked as submitted or stored."""
        rows = []
        for event in self.fields:
            bound = self[event]
            ticked = set(bound.value() or [])
            spec = EVENTS[event]
            cells = [
                Cell(name, CHANNELS[name].label, f"{bound.auto_id}_{name}", name in ticked and not self.reasons[name], bool(self.reasons[name]))
                for name in MEMBER_CHANNELS
            ]
            rows.append(Row(bound.html_name, event, spec.label, spec.help, spec.on_by_default, cells, list(bound.errors)))
        return rows


class PreferenceAdminForm(forms.ModelForm):
    """A member's choice as staff edit it: the member channels as checkboxes, not raw JSON."""

    channels = forms.MultipleChoiceField(
        choices=[(name, CHANNELS[name].label) for name in MEMBER_CHANNELS], required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: the member hears nothing of this event.",
    )

    class Meta:
        model = Preference
        fields = ["user", "event", "channels"]


# --- staff: destinations ----------------------------------------------------------------------


class WebhookURLField(forms.URLField):
    """A URL field that reads a webhook pasted without its scheme as https."""

    def __init__(self, **kwargs):
        kwargs.setdefault("assume_scheme", "https")
        super().__init__(**kwargs)


class DestinationForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=Event.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: the usual ones (booking created, changed, cancelled and released for a server "
        "or room; unbooked use and stale hosts for the whole lab).",
    )

    class Meta:
        model = Destination
        fields = ["name", "kind", "webhook_url", "channel", "server", "room", "events", "active"]
        field_classes = {"webhook_url": WebhookURLField}


# --- staff: message templates -----------------------------------------------------------------


def variables_help():
    """The documented template variables as an HTML list, for the template editor."""
    items = format_html_join("", "<li><code>{{{{ {} }}}}</code> — {}</li>", VARIABLES.items())
    return format_html(
        "<p>Templates are Django templates. Times print in the recipient's time zone, e.g. "
        "<code>{{% span start end %}}</code>, <code>{{{{ start|when }}}}</code>, <code>{{{{ end|clock }}}}</code>.</p>"
        '<ul class="template-variables">{}</ul>',
        items,
    )


def sample_occasions(event):
    """(occasion, recipient): an occasion like the real ones for `event`, built from unsaved
    objects (nothing is written), to try a staff template on."""
    from monitoring.models import Alert

    now = timezone.now().replace(second=0, microsecond=0)
    start = now + timedelta(hours=1)
    user = _sample_user(1, "alice", "Alice", "Liddell")
    other = _sample_user(2, "bob", "Bob", "Builder")
    server = Server(id=1, name="thalys", hostname="thalys.lab.example.org")
    booking = Booking(id=42, user=user, server=server, whole_server=True, start=start, end=start + timedelta(hours=2), purpose="training resnet")
    next_booking = Booking(id=43, user=other, server=server, whole_server=True, start=booking.end, end=booking.end + timedelta(hours=1))
    occasion = Occasion(event, booking=booking, by=user)
    if event == Event.CHANGED:
        occasion.before = (start - timedelta(hours=1), booking.end - timedelta(hours=1))
    if event == Event.FOLLOWED:
        occasion.next_booking = next_booking
    if event in (Event.IDLE_BOOKING, Event.UNBOOKED_USE, Event.HOST_STALE):
        concerned = None if event == Event.HOST_STALE else user
        message = {
            Event.IDLE_BOOKING: "GPU 0 on thalys has been idle for 30 minutes of alice's booking.",
            Event.UNBOOKED_USE: "alice runs python on GPU 3 of thalys without a booking.",
            Event.HOST_STALE: "thalys has not reported for 5 minutes.",
        }[event]
        alert = Alert(id=7, kind=event, key="sample", server=server, user=concerned, message=message, opened_at=now, last_seen_at=now)
        booking_for_alert = booking if event == Event.IDLE_BOOKING else None
        occasion = Occasion(event, alert=alert, booking=booking_for_alert)
    return occasion, user


def _sample_user(pk, username, first_name, last_name):
    user = get_user_model()(id=pk, username=username, first_name=first_name, last_name=last_name, email=f"{username}@lab.example.org")
    user.profile = Profile(user=user, slack_user_id=f"U0SAMPLE{pk}")
    return user


class MessageTemplateForm(forms.ModelForm):
    """Staff's text for an event; refused unless each part compiles and renders with a sample booking."""

    class Meta:
        model = MessageTemplate
        fields = ["event", "family", "subject", "body", "html"]
        widgets = {"body": forms.Textarea(attrs={"rows": 10, "cols": 90}), "html": forms.Textarea(attrs={"rows": 8, "cols": 90})}

    def clean(self):
        cleaned = super().clean()
        family, event = cleaned.get("family"), cleaned.get("event")
        if family == MessageTemplate.Family.SLACK:
            for name in ("subject", "html"):
                if cleaned.get(name):
                    self.add_error(name, "Slack messages have only a text; leave this empty (it is for e-mails).")
        compiled = {}
        for name, engine in (("subject", text_engine), ("body", text_engine), ("html", html_engine)):
            if cleaned.get(name):
                try:
                    compiled[name] = engine.from_string(cleaned[name])
                except TemplateSyntaxError as error:
                    self.add_error(name, f"This is not a valid template: {error}")
        if event and family and not self.errors:
            self._try_rendering(event, family, compiled)
        return cleaned

    def _try_rendering(self, event, family, compiled):
        occasion, user = sample_occasions(event)
        recipients = [(user, None)]
        if family == MessageTemplate.Family.SLACK:
            recipients.append((None, Destination(id=1, name="#thalys", server=occasion.booking and occasion.booking.server)))
        for name, template in compiled.items():
            for recipient, destination in recipients:
                context, zone = context_for(occasion, user=recipient, family=family, destination=destination)
                try:
                    if name == "html":
                        render_html(template, {**context, "text": "(the text)"}, zone)
                    else:
                        render_text(template, context, zone)
                except Exception as error:  # any failure is the template's; staff must see it, not a 500
                    where = "a member's message" if recipient is not None else "a channel post"
                    self.add_error(name, f"This fails to render for {where} about a sample booking: {type(error).__name__}: {error}")
                    break
