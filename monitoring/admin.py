"""The admin for staff: what the GPU hosts last reported, and their raw samples. Read-only: hosts write these."""
from django.contrib import admin

from .models import GpuSample, HostStatus


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shows rows; nobody adds, changes or deletes them by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(HostStatus)
class HostStatusAdmin(ReadOnlyAdmin):
    list_display = ["server", "last_seen_at", "driver_version", "nvml_error"]
    list_select_related = ["server"]
    search_fields = ["server__name"]


@admin.register(GpuSample)
class GpuSampleAdmin(ReadOnlyAdmin):
    list_display = ["device", "taken_at", "gpu_util", "mem_util", "memory_used_mib", "temperature_c", "power_w", "error"]
    list_filter = ["device__server"]
    list_select_related = ["device__server"]
    date_hierarchy = "taken_at"
    show_full_result_count = False  # counting every raw sample on each page view is slow
