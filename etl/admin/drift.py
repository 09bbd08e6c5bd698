"""Drift review: drift events (accept, accept and replay, reject), the field mappings accepted
from them, and the drift section of a run's page."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe

from etl.models import DriftEvent, FieldMapping
from etl.services.drift import drift_accept, drift_reject
from etl.tasks import replay_drift
from kasparro.core.admin_utils import NotAddedHereMixin, pretty_json, status_column
from kasparro.core.errors import ApplicationError
from runs.admin import run_link, run_page_section
from runs.models import Run


class MappingInline(admin.TabularInline):
    model = FieldMapping
    extra = 0
    fields = ["from_field", "to_field", "active", "accepted_by", "accepted_at"]
    readonly_fields = ["accepted_by", "accepted_at"]


@admin.register(DriftEvent)
class DriftEventAdmin(NotAddedHereMixin, admin.ModelAdmin):
    list_display = [
        "last_seen",
        "source",
        status_column("severity"),
        "kind",
        "fingerprint",
        "confidence",
        "suggestion",
        status_column("status"),
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

    @admin.display(description="suggested mapping")
    def suggestion(self, obj: DriftEvent) -> str:
        return f"{obj.suggested_from} → {obj.suggested_to}" if obj.suggested_from else "-"

    @admin.display(description="sample item")
    def sample_pretty(self, obj: DriftEvent) -> SafeString:
        return pretty_json(obj.sample, sort_keys=False)

    @admin.display(description="affected runs")
    def affected_runs(self, obj: DriftEvent) -> SafeString | str:
        runs = obj.runs.order_by("-started_at")[:20]
        return format_html_join(", ", "{}", ((run_link(r),) for r in runs)) or "-"

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

    @admin.action(description="Accept (apply the suggested mapping)", permissions=["change"])
    def accept(self, request, queryset):
        self._each(
            request, queryset, lambda e: drift_accept(event_id=e.pk, user=request.user), "Accepted"
        )

    @admin.action(
        description="Accept and replay the affected runs from raw records", permissions=["change"]
    )
    def accept_and_replay(self, request, queryset):
        def operation(event):
            drift_accept(event_id=event.pk, user=request.user)
            transaction.on_commit(lambda: replay_drift.delay(event.pk))

        self._each(request, queryset, operation, "Accepted and queued the replay of")

    @admin.action(description="Reject (the drifted items stay quarantined)", permissions=["change"])
    def reject(self, request, queryset):
        self._each(
            request, queryset, lambda e: drift_reject(event_id=e.pk, user=request.user), "Rejected"
        )


# --- On a run's page ---------------------------------------------------------------------------


@run_page_section("Findings")
@admin.display(description="drift events")
def drift_events_links(run: Run) -> SafeString | str:
    rows = (
        (reverse("admin:etl_driftevent_change", args=[e.pk]), e.severity, e.fingerprint, e.status)
        for e in run.drift_events.order_by("-last_seen")
    )
    return format_html_join(mark_safe("<br>"), '<a href="{}">{}: {}</a> ({})', rows) or "-"


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
