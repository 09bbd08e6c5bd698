import json

from django.contrib import admin, messages
from django.db import transaction
from django.utils import timezone
from django.utils.html import format_html

from etl.models import (
    Checkpoint,
    DriftEvent,
    FieldMapping,
    QuarantinedRecord,
    RawRecord,
    SourceLease,
    SourcePolicy,
)
from etl.services.drift import drift_accept, drift_reject
from etl.tasks import replay_drift
from kasparro.errors import ApplicationError


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


@admin.register(SourcePolicy)
class SourcePolicyAdmin(admin.ModelAdmin):
    list_display = ["source", "drift_policy", "paused", "paused_reason", "updated_at"]
    list_editable = ["drift_policy", "paused"]
    readonly_fields = ["paused_reason", "paused_at", "updated_at"]

    def has_add_permission(self, request):
        return False


class MappingInline(admin.TabularInline):
    model = FieldMapping
    extra = 0
    fields = ["from_field", "to_field", "active", "accepted_by", "accepted_at"]
    readonly_fields = ["accepted_by", "accepted_at"]


@admin.register(DriftEvent)
class DriftEventAdmin(admin.ModelAdmin):
    list_display = [
        "last_seen",
        "source",
        "severity",
        "kind",
        "fingerprint",
        "confidence",
        "suggestion",
        "status",
        "occurrences",
    ]
    list_filter = ["status", "source", "severity", "kind"]
    search_fields = ["fingerprint", "message"]
    readonly_fields = [
        "source",
        "fingerprint",
        "kind",
        "fields",
        "severity",
        "confidence",
        "message",
        "suggested_from",
        "suggested_to",
        "sample_pretty",
        "status",
        "first_seen",
        "last_seen",
        "occurrences",
        "resolved_by",
        "resolved_at",
        "replay_run",
        "affected_runs",
    ]
    exclude = ["sample", "runs"]
    inlines = [MappingInline]
    list_select_related = ["replay_run"]
    actions = ["accept", "accept_and_replay", "reject"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="suggested mapping")
    def suggestion(self, obj: DriftEvent) -> str:
        return f"{obj.suggested_from} → {obj.suggested_to}" if obj.suggested_from else "-"

    @admin.display(description="sample item")
    def sample_pretty(self, obj: DriftEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.sample, indent=2, default=str))

    @admin.display(description="affected runs")
    def affected_runs(self, obj: DriftEvent) -> str:
        return ", ".join(str(r.id)[:8] for r in obj.runs.all()[:20]) or "-"

    def _each(self, request, queryset, operation, verb: str) -> int:
        done = 0
        for event in queryset:
            try:
                operation(event)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{event}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{verb} {done} drift event(s).")
        return done

    @admin.action(description="Accept (apply the suggested mapping)")
    def accept(self, request, queryset):
        self._each(
            request, queryset, lambda e: drift_accept(event_id=e.pk, user=request.user), "Accepted"
        )

    @admin.action(description="Accept and replay the affected runs from raw records")
    def accept_and_replay(self, request, queryset):
        def operation(event):
            drift_accept(event_id=event.pk, user=request.user)
            transaction.on_commit(lambda: replay_drift.delay(event.pk))

        self._each(request, queryset, operation, "Accepted and queued the replay of")

    @admin.action(description="Reject (the drifted items stay quarantined)")
    def reject(self, request, queryset):
        self._each(
            request, queryset, lambda e: drift_reject(event_id=e.pk, user=request.user), "Rejected"
        )


@admin.register(FieldMapping)
class FieldMappingAdmin(admin.ModelAdmin):
    list_display = ["source", "from_field", "to_field", "active", "accepted_by", "accepted_at"]
    list_filter = ["source", "active"]
    list_select_related = ["accepted_by"]
    readonly_fields = ["accepted_by", "accepted_at", "drift_event"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.accepted_by = request.user
            obj.accepted_at = timezone.now()
        super().save_model(request, obj, form, change)
