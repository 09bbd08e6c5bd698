from django.contrib import admin

from etl.models import Checkpoint, QuarantinedRecord, RawRecord, SourceLease


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    list_display = ["source", "updated_at", "run"]
    readonly_fields = ["source", "cursor", "updated_at", "run"]
    list_select_related = ["run"]

    def has_add_permission(self, request):
        return False


@admin.register(QuarantinedRecord)
class QuarantinedRecordAdmin(admin.ModelAdmin):
    list_display = ["created_at", "source", "reason_code", "reason", "status", "occurrences"]
    list_filter = ["source", "reason_code", "status"]
    search_fields = ["reason", "item_hash"]
    readonly_fields = [
        "source",
        "run",
        "raw_record",
        "item_hash",
        "payload",
        "reason_code",
        "reason",
        "occurrences",
        "created_at",
        "last_seen_at",
    ]
    list_select_related = ["run"]
    ordering = ["-created_at"]


@admin.register(RawRecord)
class RawRecordAdmin(admin.ModelAdmin):
    list_display = ["fetched_at", "source", "page_ref", "item_count", "content_hash"]
    list_filter = ["source"]
    readonly_fields = [
        "source",
        "content_hash",
        "payload",
        "item_count",
        "page_ref",
        "run",
        "fetched_at",
    ]
    show_full_result_count = False
    ordering = ["-fetched_at"]

    def has_add_permission(self, request):
        return False


@admin.register(SourceLease)
class SourceLeaseAdmin(admin.ModelAdmin):
    list_display = ["source", "holder", "expires_at"]
    readonly_fields = ["source", "holder", "expires_at"]

    def has_add_permission(self, request):
        return False
