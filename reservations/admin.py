"""The admin for staff: servers, GPUs, rooms and bookings.

Bookings are written only through reservations.services, once the form and its inlines are
valid (BookingAdmin.save_model); a refusal (a conflict, a bad device set, a start in the past)
is shown as an error of the form staff typed into (BookingAdmin.changeform_view).
"""
from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Count, Q
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from labres.admin import ReadOnlyAdmin

from . import feeds, icsimport, services
from .errors import BookingError
from .models import (
    Allocation,
    Booking,
    BookingAuditEntry,
    BookingSeries,
    CalendarFeed,
    Device,
    ExternalCalendar,
    ImportedEvent,
    Limit,
    MemberGroup,
    Profile,
    Room,
    Server,
    WaitlistEntry,
)
from .selectors import booking_history
from .services import waitlist

# --- servers, GPUs and rooms ---------------------------------------------------------------


class DeviceInline(admin.TabularInline):
    model = Device
    fields = ("index", "model", "memory_mib", "uuid", "active")
    extra = 0


@admin.register(Server)
class ServerAdmin(admin.ModelAdmin):
    list_display = ("name", "hostname", "location", "gpu_count", "active", "monitored", "release_idle_bookings", "requires_approval")
    list_filter = ("active", "monitored", "release_idle_bookings", "requires_approval", "location")
    search_fields = ("name", "hostname", "location", "description")
    inlines = [DeviceInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(gpu_count=Count("devices"))

    def save_formset(self, request, form, formset, change):
        if formset.model is not Device:
            return super().save_formset(request, form, formset, change)
        for device in formset.save(commit=False):  # deletes the GPUs marked for it
            if device.pk is None:
                _register(device)
            else:
                device.save()
        return None

    @admin.display(description="GPUs", ordering="gpu_count")
    def gpu_count(self, server):
        return server.gpu_count


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ("__str__", "server", "index", "model", "memory_mib", "uuid", "active")
    list_filter = ("active", "server", "model")
    search_fields = ("server__name", "model", "uuid")
    list_select_related = ("server",)

    def get_readonly_fields(self, request, obj=None):
        # A GPU's unit records its server when it is created; moving the GPU would leave it behind.
        return ("server",) if obj is not None else ()

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
        else:
            _register(obj)


def _register(device):
    """Add a GPU typed into the admin through services.register_device (its Unit, and the allocations
    of whole-server bookings that hold it); `device`, the form's instance, becomes the saved row."""
    saved = services.register_device(
        device.server, device.index, model=device.model, memory_mib=device.memory_mib, uuid=device.uuid, active=device.active,
    )
    device.pk, device._state.adding, device._state.db = saved.pk, False, saved._state.db


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ("name", "capacity", "location", "active", "requires_approval")
    list_filter = ("active", "requires_approval")
    search_fields = ("name", "location", "description")


# --- bookings ------------------------------------------------------------------------------


class AllocationInline(admin.TabularInline):
    """What a booking holds, for reading only: allocations change with their booking."""

    model = Allocation
    fields = ("unit", "start", "end", "active")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("unit__device__server", "unit__server", "unit__room")

    def has_view_permission(self, request, obj=None):
        # Nobody is given permissions on allocations; whoever may see the booking sees them.
        return request.user.has_perm("reservations.view_booking") or request.user.has_perm("reservations.change_booking")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ServiceBookingForm(forms.ModelForm):
    """A booking form that writes nothing: BookingAdmin.save_model writes through the service layer,
    and a refusal comes back as this form's error (`refusal`, see BookingAdmin.changeform_view)."""

    request_user = None  # set by BookingAdmin.get_form
    refusal = None  # the service's BookingError for this very POST, set by BookingAdmin.get_form

    def clean(self):
        cleaned = super().clean()
        if self.refusal is not None:
            self.add_booking_error(self.refusal)
        elif {"start", "end"} & set(self.changed_data) and cleaned.get("start") and cleaned.get("end"):
            # The service checks the times again when it writes; checked here too so that the model's
            # own validation, which follows, never meets a time Python cannot convert (year 9999 west of UTC).
            now = timezone.now()
            started = self.instance.pk is not None and self.instance.start <= now
            try:
                services.check_times(cleaned["start"], cleaned["end"], now=now, allow_past_start=started)
            except BookingError as error:
                self.add_booking_error(error)
        return cleaned

    def add_booking_error(self, error):
        field = error.field if error.field in self.fields else None
        self.add_error(field, error.message)

    def save(self, commit=True):
        self.save_m2m = lambda: None  # a booking has no many-to-many fields
        return self.instance


class BookingAddForm(ServiceBookingForm):
    devices = forms.CharField(
        required=False,
        help_text="GPU indices on the server, e.g. 0-2,5. Leave empty to book the whole server.",
    )

    class Meta:
        model = Booking
        fields = ("user", "server", "room", "start", "end", "purpose")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("devices") and cleaned.get("server") is None:
            self.add_error("devices", "GPUs belong to a server; choose the server, or leave this empty for a room.")
        return cleaned

    def write(self):
        """Book through the service; returns the booking (raises BookingError)."""
        cleaned = self.cleaned_data
        return services.create_booking(
            cleaned["user"],
            server=cleaned["server"],
            devices=cleaned["devices"] or None,
            room=cleaned["room"],
            start=cleaned["start"],
            end=cleaned["end"],
            purpose=cleaned["purpose"],
            source=Booking.Source.ADMIN,
            by=self.request_user,
        )


class BookingChangeForm(ServiceBookingForm):
    class Meta:
        model = Booking
        fields = ("start", "end", "purpose")

    def write(self):
        """Change through the service (times and purpose alike: every change makes its event); returns the booking."""
        changed = {name: self.cleaned_data[name] for name in ("start", "end", "purpose") if name in self.changed_data}
        if not changed:
            return Booking.objects.get(pk=self.instance.pk)
        return services.change_booking(self.instance, by=self.request_user, **changed)


class _Refused(Exception):
    """The service refused the admin's write; carries its BookingError back to changeform_view."""

    def __init__(self, error):
        super().__init__(error.message)
        self.error = error


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "what", "start", "end", "status", "source", "purpose")
    list_filter = ("status", "source", "server", "room")
    search_fields = ("user__username", "user__email", "purpose", "server__name", "room__name")
    date_hierarchy = "start"
    list_select_related = ("user", "server", "room")
    inlines = [AllocationInline]
    actions = ["cancel_selected", "approve_selected", "decline_selected"]

    add_fields = ("user", "server", "devices", "room", "start", "end", "purpose")
    change_fields = ("user", "what", "server", "whole_server", "room", "start", "end", "purpose", "status", "source", "created_at", "updated_at")
    change_readonly_fields = ("user", "what", "server", "whole_server", "room", "status", "source", "created_at", "updated_at")
    # Approval: how it was decided, and the staff page to decide a pending one on.
    change_fields += ("approval", "decision", "decided_by", "decided_at", "decision_note")
    change_readonly_fields += ("approval", "decision", "decided_by", "decided_at", "decision_note")
    # Who did what to it, read-only: a field rather than an inline, so the change form posts nothing for it.
    change_fields += ("history",)
    change_readonly_fields += ("history",)

    def get_queryset(self, request):
        # Booking.what reads each booking's allocations, their units and devices.
        return super().get_queryset(request).prefetch_related("allocations__unit__device")

    def get_fields(self, request, obj=None):
        return self.change_fields if obj is not None else self.add_fields

    def get_readonly_fields(self, request, obj=None):
        return self.change_readonly_fields if obj is not None else ()

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = BookingChangeForm if obj is not None else BookingAddForm
        form = super().get_form(request, obj, change=change, **kwargs)
        form.request_user = request.user  # a fresh class per request: the service needs who changes
        form.refusal = getattr(request, "booking_refusal", None)
        return form

    def save_model(self, request, obj, form, change):
        """The one write, through the services; `obj` becomes the booking written."""
        try:
            booking = form.write()
        except BookingError as error:
            raise _Refused(error) from None
        for field in Booking._meta.concrete_fields:
            setattr(obj, field.attname, getattr(booking, field.attname))
        obj._state.adding, obj._state.db = False, booking._state.db

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The forms write nothing; a refusal of the service's write (a conflict, a limit, a start in
        # the past) leaves save_model as _Refused, through the view's transaction, which rolls back.
        # The same POST is then shown again with the refusal as the form's error, where staff typed.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _Refused as refused:
            request.booking_refusal = refused.error
            return super().changeform_view(request, object_id, form_url, extra_context)

    def has_delete_permission(self, request, obj=None):
        return False  # bookings are cancelled, never deleted: their history matters

    @admin.display(description="history")
    def history(self, booking):
        entries = booking_history(booking)
        lines = format_html_join("", "<li>{}{}</li>", ((entry.summary(), _changes_note(entry)) for entry in entries))
        return format_html("<ol>{}</ol>", lines) if lines else "—"

    @admin.action(description="Cancel selected bookings", permissions=["change"])
    def cancel_selected(self, request, queryset):
        cancelled, refusals = 0, []
        for booking in queryset.order_by("pk"):
            try:
                services.cancel_booking(booking, by=request.user)
            except BookingError as error:
                refusals.append(error.message)  # e.g. already started, already cancelled
            else:
                cancelled += 1
        if cancelled:
            noun = "booking" if cancelled == 1 else "bookings"
            self.message_user(request, f"Cancelled {cancelled} {noun}.", level=messages.SUCCESS)
        for message in refusals:
            self.message_user(request, message, level=messages.WARNING)


    @admin.display(description="approval")
    def approval(self, booking):
        if booking.status == Booking.Status.PENDING:
            return format_html('<a href="{}">Approve or decline on the decide page</a>', reverse("booking-decide", args=[booking.pk]))
        return booking.get_decision_display() or "not needed"

    @admin.action(description="Approve selected bookings (awaiting approval)", permissions=["change"])
    def approve_selected(self, request, queryset):
        self._decide(request, queryset, "Approved", lambda booking: services.approve_booking(booking, by=request.user))

    @admin.action(description="Decline selected bookings (awaiting approval), with a reason", permissions=["change"])
    def decline_selected(self, request, queryset):
        """First a page that lists the bookings and asks for the reason the members will read; then decline."""
        reason = request.POST.get("reason", "")
        if request.POST.get("confirm") == "yes" and len(reason.strip()) <= 500:
            self._decide(request, queryset, "Declined", lambda booking: services.decline_booking(booking, by=request.user, reason=reason))
            return None
        bookings = list(queryset.select_related("user__profile", "server", "room").prefetch_related("allocations__unit__device").order_by("start", "pk"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Decline bookings awaiting approval",
            "opts": self.model._meta,
            "bookings": bookings,
            "pending": [booking for booking in bookings if booking.status == Booking.Status.PENDING],
            "reason": reason,
            "error": "Keep the reason to 500 characters." if len(reason.strip()) > 500 else "",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/reservations/booking/decline_selected.html", context)

    def _decide(self, request, queryset, done, decide):
        count, refusals = 0, []
        for booking in queryset.order_by("pk"):
            try:
                decide(booking)
            except BookingError as error:
                refusals.append(error.message)  # e.g. already approved, not awaiting approval
            else:
                count += 1
        if count:
            self.message_user(request, f"{done} {count} booking{'s' if count != 1 else ''}; the members are told.", level=messages.SUCCESS)
        for message in refusals:
            self.message_user(request, message, level=messages.WARNING)


# --- members -------------------------------------------------------------------------------


class ProfileInline(admin.StackedInline):
    """A member's profile on their user page: staff set the unix user name that matches their
    processes on the GPU hosts to their bookings, and the Slack id that direct messages go to."""

    model = Profile
    fields = ("display_name", "time_zone", "unix_username", "group", "slack_user_id")
    can_delete = False
    max_num = 1

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "group":  # the page has Django's permission groups too: say which is which
            field.label = "Member group (fair-use limits)"
            field.help_text = "The labres group whose limits apply to this member (and its parents' limits); not a permission group."
        return field


class LimitInline(admin.TabularInline):
    """Limits on a group, or a member's own overrides; the value to fill depends on the kind."""

    model = Limit
    fields = ("kind", "server", "room", "number", "duration", "allowed", "applies_to_staff")
    extra = 0


@admin.register(MemberGroup)
class MemberGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "parent", "member_count", "limit_count")
    search_fields = ("name",)
    inlines = [LimitInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("parent").annotate(
            members_n=Count("members", distinct=True), limits_n=Count("limits", distinct=True)
        )

    @admin.display(description="members", ordering="members_n")
    def member_count(self, group):
        return group.members_n

    @admin.display(description="limits", ordering="limits_n")
    def limit_count(self, group):
        return group.limits_n


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class MemberAdmin(UserAdmin):
    list_display = (*UserAdmin.list_display, "unix_username")
    list_select_related = ("profile",)
    search_fields = (*UserAdmin.search_fields, "profile__unix_username", "profile__display_name", "profile__slack_user_id")
    inlines = [ProfileInline, LimitInline]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if "groups" in form.base_fields:  # Django's groups grant admin permissions; fair use has its own groups below
            form.base_fields["groups"].label = "Permission groups (admin rights)"
            form.base_fields["groups"].help_text = (
                "Django's groups: what this user may do in the admin, and how the usage page groups members. "
                "Fair-use limits come from the member group under Profile."
            )
        return form

    def get_inlines(self, request, obj):
        # A new user gets their profile from the post_save signal; an inline would make a second one.
        return self.inlines if obj is not None else []

    @admin.display(description="unix user name", ordering="profile__unix_username")
    def unix_username(self, user):
        try:
            return user.profile.unix_username
        except Profile.DoesNotExist:  # a user made before profiles existed
            return ""


# --- calendars -----------------------------------------------------------------------------


@admin.register(CalendarFeed)
class CalendarFeedAdmin(admin.ModelAdmin):
    """Members' feed addresses: who follows what, and when an app last fetched it. The secrets are never shown."""

    list_display = ("user", "scope", "server", "room", "created_at", "last_used_at")
    list_filter = ("scope",)
    search_fields = ("user__username", "user__email", "server__name", "room__name")
    list_select_related = ("user", "server", "room")
    fields = ("user", "scope", "server", "room", "created_at", "last_used_at")
    readonly_fields = fields
    actions = ["reset_addresses"]

    def has_add_permission(self, request):
        return False  # members make their own, on the profile page

    @admin.action(description="Reset the addresses (the old ones stop working)", permissions=["change"])
    def reset_addresses(self, request, queryset):
        for feed in queryset:
            feeds.reset(feed)
        self.message_user(request, f"{queryset.count()} address(es) reset; their members find the new ones on their profile page.")



class ImportedEventInline(admin.TabularInline):
    """The calendar's events that are not bookings, with the reason; for reading only (the source is the truth)."""

    model = ImportedEvent
    verbose_name_plural = "events that need attention"
    fields = ("summary", "start", "end", "state", "problem", "booking")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).filter(state__in=ImportedEvent.PROBLEMS).select_related("booking")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ExternalCalendar)
class ExternalCalendarAdmin(admin.ModelAdmin):
    list_display = ("name", "resource", "active", "last_fetched_at", "last_status", "problems", "last_error")
    list_filter = ("active", "server", "room")
    search_fields = ("name", "url")
    list_select_related = ("server", "room")
    fields = ("name", "url", "server", "room", "active", "notify_members", "last_fetched_at", "last_status", "last_error", "created_at")
    readonly_fields = ("last_fetched_at", "last_status", "last_error", "created_at")
    inlines = [ImportedEventInline]
    actions = ["fetch_now"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(problem_count=Count("events", filter=Q(events__state__in=ImportedEvent.PROBLEMS)))

    @admin.display(description="resource")
    def resource(self, calendar):
        return calendar.resource

    @admin.display(description="problems", ordering="problem_count")
    def problems(self, calendar):
        if not calendar.problem_count:
            return "none"
        return format_html(
            '<a href="../importedevent/?calendar__id__exact={}&amp;state__in={}">{} to look at</a>',
            calendar.pk, ",".join(ImportedEvent.PROBLEMS), calendar.problem_count,
        )

    @admin.action(description="Fetch now", permissions=["change"])
    def fetch_now(self, request, queryset):
        for calendar in queryset.order_by("pk"):
            summary = icsimport.sync(calendar)
            if summary.skipped:
                self.message_user(request, f"{calendar.name}: being synced right now; try again in a minute.", level=messages.WARNING)
            elif summary.error:
                self.message_user(request, f"{calendar.name}: {summary.error}", level=messages.ERROR)
            else:
                self.message_user(request, f"{calendar.name}: {summary.status}.", level=messages.SUCCESS)


@admin.register(ImportedEvent)
class ImportedEventAdmin(admin.ModelAdmin):
    """Every imported occurrence and what became of it; conflicts and unknown members show why."""

    list_display = ("summary", "calendar", "start", "end", "state", "problem", "booking")
    list_filter = ("state", "calendar")
    search_fields = ("summary", "uid", "problem", "booking__user__username")
    list_select_related = ("calendar", "booking")
    date_hierarchy = "start"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- waitlist ---------------------------------------------------------------------------------


@admin.register(WaitlistEntry)
class WaitlistEntryAdmin(admin.ModelAdmin):
    """Who waits for what, in which order; entries change through the waitlist's own rules, staff only withdraw."""

    list_display = ("id", "user", "what", "length_text", "state", "place", "queued_at", "offer_expires_at", "not_after", "booking")
    list_filter = ("state", "server", "room")
    search_fields = ("user__username", "purpose")
    list_select_related = ("user", "server", "room")
    ordering = ("server__name", "room__name", "queued_at", "pk")
    actions = ["withdraw_entries"]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        rows = getattr(getattr(response, "context_data", {}).get("cl"), "result_list", None)
        if rows is not None:
            waitlist.with_positions(rows)  # one query for every line shown
        return response

    @admin.display(description="length")
    def length_text(self, entry):
        return entry.length_text

    @admin.display(description="place in line")
    def place(self, entry):
        return getattr(entry, "position", None) or "—"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Withdraw the selected entries", permissions=["delete"])
    def withdraw_entries(self, request, queryset):
        done = 0
        for entry in queryset.filter(state__in=WaitlistEntry.OPEN).order_by("pk"):
            waitlist.withdraw(entry, by=request.user)
            done += 1
        self.message_user(request, f"Withdrew {done} waitlist entr{'y' if done == 1 else 'ies'}.", level=messages.SUCCESS)


def _changes_note(entry):
    """' (status: confirmed → cancelled) “reason”': what an entry changed, and its note."""
    changes, note = entry.changes_text(), entry.note
    return (f" ({changes})" if changes else "") + (f" “{note}”" if note else "")


@admin.register(BookingAuditEntry)
class BookingAuditEntryAdmin(ReadOnlyAdmin):
    """The audit log of every booking, for reading only: the services write it, nobody edits it."""

    list_display = ("at", "booking_link", "action", "actor", "surface", "changes_text", "note")
    list_filter = ("action", "surface")
    search_fields = ("=booking__id", "actor__username", "note")
    date_hierarchy = "at"
    list_select_related = ("actor",)
    fields = ("at", "booking_link", "series", "action", "actor", "surface", "changes_text", "note")
    readonly_fields = fields

    @admin.display(description="booking", ordering="booking_id")
    def booking_link(self, entry):
        return format_html('<a href="{}">#{}</a>', reverse("admin:reservations_booking_change", args=[entry.booking_id]), entry.booking_id)

    @admin.display(description="changes")
    def changes_text(self, entry):
        return entry.changes_text()

    def has_view_permission(self, request, obj=None):
        # Nobody is given permissions on entries; whoever may see bookings reads their history.
        return request.user.has_perm("reservations.view_booking") or request.user.has_perm("reservations.change_booking")


# --- recurring bookings (series) -------------------------------------------------------------------


class SeriesBookingInline(admin.TabularInline):
    """A series' dates, read-only: each is changed or cancelled as a booking of its own."""

    model = Booking
    fields = ("booking_link", "start", "end", "status", "purpose")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("start",)

    @admin.display(description="booking")
    def booking_link(self, booking):
        return f"#{booking.pk}"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(BookingSeries)
class BookingSeriesAdmin(admin.ModelAdmin):
    """Recurring bookings are made by members (form, API); staff read them and cancel the rest."""

    list_display = ("id", "user", "described", "purpose", "date_count", "created_at")
    search_fields = ("user__username", "purpose")
    list_select_related = ("user",)
    fields = ("user", "described", "rule", "first_date", "start_time", "length", "time_zone", "until", "purpose", "created_at")
    readonly_fields = fields
    inlines = [SeriesBookingInline]
    actions = ["cancel_the_rest"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(date_count=Count("bookings", filter=Q(bookings__status=Booking.Status.CONFIRMED)))

    @admin.display(description="repeats")
    def described(self, series):
        return series.describe()

    @admin.display(description="confirmed dates", ordering="date_count")
    def date_count(self, series):
        return series.date_count

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # its bookings' history matters; cancel the rest instead

    @admin.action(description="Cancel the rest (dates not started yet)", permissions=["change"])
    def cancel_the_rest(self, request, queryset):
        for series in queryset.order_by("pk"):
            try:
                result = services.cancel_series(series, by=request.user)
            except BookingError as error:
                self.message_user(request, error.message, level=messages.WARNING)
                continue
            kept = f"; booking #{result.skipped[0].pk} is running and was left alone" if result.skipped else ""
            self.message_user(request, f"Series #{series.pk}: cancelled {len(result.bookings)} dates{kept}.", level=messages.SUCCESS)
