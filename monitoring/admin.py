"""The admin for staff: what the GPU hosts last reported, their samples and rollups, booking usage and
alerts. Read-only: hosts and the periodic tasks write these. Staff may mark alerts resolved."""
from datetime import timedelta

from django.contrib import admin, messages
from django.db.models import Prefetch
from django.utils import timezone

from labres.admin import ReadOnlyAdmin
from reservations.models import Allocation

from .live import stale_after
from .models import Alert, BookingUsage, GpuHour, GpuMinute, GpuSample, HostStatus

# --- hosts -----------------------------------------------------------------------------------


class FreshnessFilter(admin.SimpleListFilter):
    """Hosts that reported within the stale limit, or not."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("fresh", "fresh"), ("stale", "stale")]

    def queryset(self, request, queryset):
        cutoff = timezone.now() - stale_after()
        if self.value() == "fresh":
            return queryset.filter(last_seen_at__gte=cutoff)
        if self.value() == "stale":
            return queryset.filter(last_seen_at__lt=cutoff)
        return queryset


@admin.register(HostStatus)
class HostStatusAdmin(ReadOnlyAdmin):
    list_display = ["server", "last_seen_at", "state", "agent_version", "driver_version", "nvml_error"]
    list_filter = [FreshnessFilter]
    list_select_related = ["server"]
    search_fields = ["server__name"]

    @admin.display(description="state", ordering="last_seen_at")
    def state(self, status):
        # Text, not an icon: "stale" must read as such without colour.
        return "stale" if status.last_seen_at < timezone.now() - stale_after() else "fresh"


# --- samples and rollups -----------------------------------------------------------------------


class RecentFilter(admin.SimpleListFilter):
    """The last hour, day, week or month of readings. Instead of a date hierarchy, whose list of days is a
    DISTINCT over the date of every row (on SQLite a Python call a row: 350 ms for two days of minutes)."""

    title = "taken"
    parameter_name = "within"
    SPANS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}

    def lookups(self, request, model_admin):
        return [("1h", "last hour"), ("24h", "last 24 hours"), ("7d", "last 7 days"), ("30d", "last 30 days")]

    def queryset(self, request, queryset):
        span = self.SPANS.get(self.value())
        if span is None:
            return queryset
        return queryset.filter(**{f"{self.field}__gte": timezone.now() - span})


class SampleRecentFilter(RecentFilter):
    field = "taken_at"


class BucketRecentFilter(RecentFilter):
    field = "bucket"



@admin.register(GpuSample)
class GpuSampleAdmin(ReadOnlyAdmin):
    list_display = ["device", "taken_at", "gpu_util", "mem_util", "memory_used_mib", "temperature_c", "power_w", "error"]
    list_filter = [SampleRecentFilter, "device__server"]
    list_select_related = ["device__server"]
    show_full_result_count = False  # counting every raw sample on each page view is slow


class RollupAdmin(ReadOnlyAdmin):
    list_display = [
        "device", "bucket", "samples", "errors", "gpu_util_mean", "gpu_util_max", "memory_used_max", "temperature_max", "power_mean",
    ]
    list_filter = [BucketRecentFilter, "device__server"]
    list_select_related = ["device__server"]
    show_full_result_count = False  # a year of hours for 400 GPUs is millions of rows

    @admin.display(description="GPU util (mean %)")
    def gpu_util_mean(self, rollup):
        return _rounded(rollup.gpu_util_avg)

    @admin.display(description="power (mean W)")
    def power_mean(self, rollup):
        return _rounded(rollup.power_avg)


@admin.register(GpuMinute)
class GpuMinuteAdmin(RollupAdmin):
    pass


@admin.register(GpuHour)
class GpuHourAdmin(RollupAdmin):
    pass


def _rounded(value):
    return None if value is None else round(value, 1)


# --- booking usage -----------------------------------------------------------------------------


@admin.register(BookingUsage)
class BookingUsageAdmin(ReadOnlyAdmin):
    list_display = [
        "booking_id", "member", "what", "samples", "gpu_util_mean", "gpu_util_peak", "memory_peak_mib",
        "booked_gpu_hours", "used_gpu_hours", "source", "settled_at",
    ]
    list_filter = ["source", "booking__server"]
    list_select_related = ["booking__user", "booking__server", "booking__room"]
    search_fields = ["booking__user__username", "booking__purpose", "booking__server__name"]
    date_hierarchy = "settled_at"

    def get_queryset(self, request):
        # Booking.what names a booking's GPUs from its allocations: one query for the page, not one a row.
        gpus = Allocation.objects.select_related("unit__device")
        return super().get_queryset(request).prefetch_related(Prefetch("booking__allocations", gpus))

    @admin.display(description="booking", ordering="booking_id")
    def booking_id(self, usage):
        return f"#{usage.booking_id}"

    @admin.display(description="member", ordering="booking__user__username")
    def member(self, usage):
        return usage.booking.user

    @admin.display(description="what")
    def what(self, usage):
        return usage.booking.what


# --- alerts ------------------------------------------------------------------------------------


class OpenFilter(admin.SimpleListFilter):
    """Open alerts (their cause lasts) or resolved ones."""

    title = "open or resolved"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", "open"), ("no", "resolved")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = [
        "kind", "server", "device", "user", "unix_username", "message", "action", "opened_at", "last_seen_at", "resolved_at",
    ]
    list_filter = ["kind", "server", OpenFilter]
    list_select_related = ["server", "device__server", "user"]
    search_fields = ["message", "unix_username", "user__username", "user__first_name", "user__last_name"]
    date_hierarchy = "opened_at"
    actions = ["mark_resolved"]

    class Media:
        css = {"all": ["css/admin.css"]}

    def has_resolve_permission(self, request):
        # The admin itself is read-only; resolving is a change to alerts all the same.
        return request.user.has_perm("monitoring.change_alert")

    @admin.action(description="Mark as resolved", permissions=["resolve"])
    def mark_resolved(self, request, queryset):
        resolved = queryset.filter(resolved_at__isnull=True).update(resolved_at=timezone.now())
        noun = "alert" if resolved == 1 else "alerts"
        self.message_user(
            request,
            f"Marked {resolved} {noun} as resolved. One whose cause lasts opens again at the detector's next run.",
            level=messages.SUCCESS if resolved else messages.INFO,
        )
