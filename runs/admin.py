from django.contrib import admin

from runs.models import Run


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "source",
        "status",
        "trigger",
        "duration",
        "pages",
        "items_fetched",
        "items_inserted",
        "items_updated",
        "items_quarantined",
        "error_message_short",
    ]
    list_filter = ["source", "status", "trigger", "started_at"]
    search_fields = ["id", "error_message", "error_class"]
    date_hierarchy = "started_at"
    list_select_related = ["parent"]
    ordering = ["-started_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="duration")
    def duration(self, obj: Run) -> str:
        seconds = obj.duration_seconds
        return "-" if seconds is None else f"{seconds:.1f}s"

    @admin.display(description="error")
    def error_message_short(self, obj: Run) -> str:
        return obj.error_message[:120]
