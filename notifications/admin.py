"""The admin for staff: the outbox (what happened, what was sent, what failed, retry), Slack
destinations, message templates and members' choices."""
import json

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.text import Truncator

from . import outbox
from .forms import DestinationForm, MessageTemplateForm, PreferenceAdminForm, variables_help
from .models import Destination, MessageTemplate, Notification, OutboxEvent, Preference

# Sent one by one inside the admin's request, each with its own HTTP or SMTP timeout.
SEND_NOW_LIMIT = 50
# Expanded (and their messages sent) one by one inside the admin's request.
EXPAND_NOW_LIMIT = 50
TEST_MESSAGE_LIMIT = 10
# Retried rows up to this many are handed to a worker at once, as new ones are; the sweep sends more.
HAND_OVER_LIMIT = 500


def _plural(count, noun):
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _ids_up_to(model_admin, request, queryset, limit, too_many):
    """The selected rows' ids for an action done inside the request; None, said as an error, past `limit`."""
    ids = list(queryset.values_list("pk", flat=True)[: limit + 1])
    if len(ids) > limit:
        model_admin.message_user(request, too_many, level=messages.ERROR)
        return None
    return ids


def _say_outcome(model_admin, request, text, *, done, asked, others):
    """A success when the action did all it was asked; else a warning that adds what became of the others."""
    if done < asked:
        model_admin.message_user(request, text + others, level=messages.WARNING)
    else:
        model_admin.message_user(request, text, level=messages.SUCCESS)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """The outbox, read-only: rows are written by the outbox and changed only by its actions."""

    list_display = ("created_at", "event", "addressee", "channel", "state", "attempts", "next_attempt_at", "short_error")
    list_filter = ("state", "channel", "event")
    search_fields = ("recipient__username", "destination__name", "key")
    date_hierarchy = "created_at"
    list_select_related = ("recipient", "destination")
    actions = ["retry_now", "send_due_now"]
    fields = (
        "key", "event", "channel", "recipient", "destination", "booking", "alert", "state", "attempts",
        "next_attempt_at", "sent_at", "created_at", "last_error", "message_text", "pretty_payload",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False  # rows come from changes (bookings, alerts), never typed in

    def has_change_permission(self, request, obj=None):
        return False  # the detail page is for reading; the actions below change state

    def has_retry_permission(self, request):
        return request.user.has_perm("notifications.change_notification")

    @admin.display(description="addressee")
    def addressee(self, row):
        return row.addressee

    @admin.display(description="last error")
    def short_error(self, row):
        return Truncator(row.last_error).chars(80)

    @admin.display(description="text")
    def message_text(self, row):
        return format_html('<pre style="white-space:pre-wrap;max-width:60rem">{}</pre>', (row.payload or {}).get("text", ""))

    @admin.display(description="payload")
    def pretty_payload(self, row):
        return format_html('<pre style="white-space:pre-wrap;max-width:60rem">{}</pre>', json.dumps(row.payload, indent=2, ensure_ascii=False))

    @admin.action(description="Retry now (reset attempts)", permissions=["retry"])
    def retry_now(self, request, queryset):
        keys = list(queryset.exclude(state=Notification.State.SENT).values_list("key", flat=True)[: HAND_OVER_LIMIT + 1])
        count = outbox.retry(queryset)
        if count and len(keys) <= HAND_OVER_LIMIT:  # more than that: the sweep sends them within minutes
            outbox.deliver_after_commit(keys)
        skipped = queryset.count() - count
        text = f"{_plural(count, 'notification')} will be sent again now, with a fresh count of attempts."
        if skipped:
            text += f" {_plural(skipped, 'notification')} already sent left alone."
        self.message_user(request, text, level=messages.SUCCESS if count else messages.WARNING)

    @admin.action(description="Send due now", permissions=["retry"])
    def send_due_now(self, request, queryset):
        ids = _ids_up_to(
            self, request, queryset.order_by("next_attempt_at"), SEND_NOW_LIMIT,
            f"Select at most {SEND_NOW_LIMIT} notifications to send at once; the sweep sends the rest.",
        )
        if ids is None:
            return
        sent = sum(outbox.send_one(row_id) for row_id in ids)
        _say_outcome(
            self, request, f"Sent {sent} of {len(ids)}.", done=sent, asked=len(ids),
            others=" The others were not due, already sent, failed (use “Retry now” first), or failed again: see their last error.",
        )


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    """What happened, before it became messages: read-only, changed only by its actions."""

    list_display = ("created_at", "key", "event", "state", "attempts", "next_attempt_at", "expanded_at", "short_error")
    list_filter = ("state", "event")
    search_fields = ("key",)
    date_hierarchy = "created_at"
    actions = ["expand_now"]
    fields = ("key", "event", "booking", "alert", "by", "context", "state", "attempts", "next_attempt_at", "created_at", "expanded_at", "last_error")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False  # events come from changes (bookings, alerts), never typed in

    def has_change_permission(self, request, obj=None):
        return False

    def has_retry_permission(self, request):
        return request.user.has_perm("notifications.change_notification")

    @admin.display(description="last error")
    def short_error(self, event):
        return Truncator(event.last_error).chars(80)

    @admin.action(description="Expand now and send (reset attempts)", permissions=["retry"])
    def expand_now(self, request, queryset):
        ids = _ids_up_to(
            self, request, queryset.exclude(state=OutboxEvent.State.EXPANDED), EXPAND_NOW_LIMIT,
            f"Select at most {EXPAND_NOW_LIMIT} events to expand at once; the sweep expands the rest.",
        )
        if ids is None:
            return
        outbox.retry_events(OutboxEvent.objects.filter(pk__in=ids))
        keys = []
        for event_id in ids:
            keys += outbox.expand(event_id)
        sent = outbox.deliver(keys)
        expanded = OutboxEvent.objects.filter(pk__in=ids, state=OutboxEvent.State.EXPANDED).count()
        _say_outcome(
            self, request, f"Expanded {expanded} of {_plural(len(ids), 'event')} into {_plural(len(keys), 'notification')}; sent {sent}.",
            done=expanded, asked=len(ids), others=" The others failed again: see their last error.",
        )


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    form = DestinationForm
    list_display = ("name", "scope", "kind", "active")
    list_filter = ("kind", "active")
    search_fields = ("name", "channel", "server__name", "room__name")
    list_select_related = ("server", "room")
    actions = ["send_test_message"]
    fieldsets = (
        ("Slack", {"fields": ("name", "kind", "webhook_url", "channel")}),
        ("What it hears about", {
            "fields": ("server", "room", "events", "active"),
            "description": "A server or a room hears about its bookings; with neither, the destination is lab-wide.",
        }),
    )

    @admin.display(description="scope")
    def scope(self, destination):
        return destination.scope

    @admin.action(description="Send a test message", permissions=["change"])
    def send_test_message(self, request, queryset):
        destinations = list(queryset[: TEST_MESSAGE_LIMIT + 1])
        if len(destinations) > TEST_MESSAGE_LIMIT:
            self.message_user(request, f"Test at most {TEST_MESSAGE_LIMIT} destinations at once.", level=messages.ERROR)
            return
        for destination in destinations:
            row = outbox.queue_test_message(destination, by=request.user)
            outbox.send_one(row.pk)  # now, so the answer is on this page; the outbox keeps retrying if it failed
            row.refresh_from_db()
            self._report_test(request, destination, row)

    def _report_test(self, request, destination, row):
        if row.state == Notification.State.SENT:
            self.message_user(request, f"{destination}: test message sent.", level=messages.SUCCESS)
        elif row.state == Notification.State.FAILED:
            self.message_user(request, f"{destination}: the test message failed: {row.last_error}", level=messages.ERROR)
        else:
            self.message_user(request, f"{destination}: not sent yet ({row.last_error or 'queued'}); the outbox retries it.", level=messages.WARNING)


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = MessageTemplateForm
    list_display = ("event", "family", "subject", "updated_at")
    list_filter = ("family", "event")
    search_fields = ("subject", "body")

    def get_fieldsets(self, request, obj=None):
        # Built per request: the variables' help is HTML made from messages.VARIABLES.
        return (
            (None, {"fields": ("event", "family")}),
            ("Text", {"fields": ("subject", "body", "html"), "description": variables_help()}),
        )


@admin.register(Preference)
class PreferenceAdmin(admin.ModelAdmin):
    form = PreferenceAdminForm
    list_display = ("user", "event", "channel_list")
    list_filter = ("event",)
    search_fields = ("user__username", "user__email")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)

    @admin.display(description="channels")
    def channel_list(self, preference):
        return ", ".join(preference.channels) or "none"
