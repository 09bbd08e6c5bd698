"""Operators' admin of the ingestion machinery: checkpoints (reset, rewind), quarantine
(discard, replay), raw pages, leases, drift review and source policies."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import capfirst

from etl.models import (
    Checkpoint,
    DriftEvent,
    FieldMapping,
    QuarantinedRecord,
    RawRecord,
    SourceLease,
    SourcePolicy,
)
from etl.pipeline.replay import quarantine_replay
from etl.services.checkpoints import checkpoint_check_writable, checkpoint_reset, checkpoint_rewind
from etl.services.drift import drift_accept, drift_reject
from etl.services.quarantine import quarantine_discard
from etl.sources import get_source_class
from etl.tasks import replay_drift
from kasparro.core.admin_utils import (
    NotAddedHereMixin,
    ReadOnlyAdminMixin,
    compact_json,
    pretty_json,
)
from kasparro.core.errors import ApplicationError
from runs.admin import run_link, run_page_section
from runs.models import Run


def cursor_summary(source: str, cursor: dict, limit: int = 100) -> str:
    """What the source says about its cursor, else the cursor's JSON, on one short line."""
    try:
        text = get_source_class(source).describe_cursor(cursor or {})
    except (KeyError, TypeError, AttributeError, ValueError):
        text = compact_json(cursor)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Checkpoints --------------------------------------------------------------------------------

CONFIRM_LABEL = "I understand the next run resumes from this cursor"


class CheckpointForm(forms.ModelForm):
    """Rewind: edit the cursor, and confirm what it means."""

    confirm = forms.BooleanField(label=CONFIRM_LABEL, required=True)

    class Meta:
        model = Checkpoint
        fields = ["cursor"]
        help_texts = {"cursor": "JSON object. {} starts the source from scratch."}

    def clean_cursor(self):
        cursor = self.cleaned_data.get("cursor")
        if not isinstance(cursor, dict):
            raise forms.ValidationError("Enter a JSON object ({} starts from scratch).")
        return cursor

    def clean(self):
        cleaned = super().clean()
        try:
            checkpoint_check_writable(source=self.instance.source)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc
        return cleaned


@admin.register(Checkpoint)
class CheckpointAdmin(NotAddedHereMixin, admin.ModelAdmin):
    list_display = ["source", "cursor_short", "updated_at", "run_column"]
    list_select_related = ["run"]
    ordering = ["source"]
    search_fields = ["source"]
    form = CheckpointForm
    fields = ["source", "cursor_pretty", "cursor", "confirm", "updated_at", "run_column"]
    readonly_fields = ["source", "cursor_pretty", "updated_at", "run_column"]
    actions = ["reset"]

    def has_delete_permission(self, request, obj=None):
        return False  # a reset is how a checkpoint goes away, with its audit entry

    @admin.display(description="cursor")
    def cursor_short(self, obj: Checkpoint) -> str:
        return cursor_summary(obj.source, obj.cursor)

    @admin.display(description="current cursor")
    def cursor_pretty(self, obj: Checkpoint) -> SafeString:
        return pretty_json(obj.cursor)

    @admin.display(description="written by run", ordering="run__started_at")
    def run_column(self, obj: Checkpoint) -> SafeString | str:
        return run_link(obj.run)

    def save_model(self, request, obj, form, change):
        # The service writes; the form was a proposal. A run may have started since the form
        # was checked: then nothing is written, logged, or reported as changed.
        try:
            obj.cursor_before = checkpoint_rewind(
                source=obj.source, cursor=form.cleaned_data["cursor"]
            )
        except ApplicationError as exc:
            obj.refused = exc.message
        obj.refresh_from_db()

    def log_change(self, request, obj, message):
        if getattr(obj, "refused", None):
            return None
        return super().log_change(request, obj, message)

    def response_change(self, request, obj):
        if getattr(obj, "refused", None):
            self.message_user(request, obj.refused, messages.ERROR)
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def construct_change_message(self, request, form, formsets, add=False):
        before = getattr(form.instance, "cursor_before", form.initial.get("cursor"))
        after = form.instance.cursor
        return f"Rewound the cursor from {compact_json(before)} to {compact_json(after)}"

    @admin.action(description="Reset (the next run starts from scratch)", permissions=["change"])
    def reset(self, request, queryset):
        checkpoints = list(queryset.order_by("source"))
        if request.POST.get("post") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Reset these checkpoints?",
                "opts": self.model._meta,
                "checkpoints": [(c, cursor_summary(c.source, c.cursor, 300)) for c in checkpoints],
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "action": "reset",
            }
            request.current_app = self.admin_site.name
            return TemplateResponse(
                request, "admin/etl/checkpoint/reset_confirmation.html", context
            )
        done = []
        for checkpoint in checkpoints:
            try:
                before = checkpoint_reset(source=checkpoint.source)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                continue
            self.log_change(
                request, checkpoint, f"Reset the cursor from {compact_json(before)} to {{}}"
            )
            done.append(checkpoint.source)
        if done:
            self.message_user(
                request, f"Reset {', '.join(done)}: the next run of each starts from scratch."
            )
        return None


# --- Quarantine ---------------------------------------------------------------------------------


class RunFilter(admin.SimpleListFilter):
    """`?run=<id>`: the items one run quarantined (linked from the run's page). It lists no
    choices of its own, so it never scans the runs."""

    title = "run"
    parameter_name = "run"

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, f"run {value[:8]}")] if value else []

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        try:
            return queryset.filter(run_id=uuid.UUID(value))
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from exc


@admin.register(QuarantinedRecord)
class QuarantinedRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    with_actions = True
    list_display = [
        "created_at",
        "source",
        "reason_code",
        "reason_short",
        "status",
        "occurrences",
        "run_column",
    ]
    list_filter = ["source", "reason_code", "status", RunFilter]
    search_fields = ["reason", "=item_hash"]
    list_select_related = ["run"]
    ordering = ["-created_at"]
    show_full_result_count = False
    fields = [
        "source",
        "status",
        "reason_code",
        "reason",
        "item_pretty",
        "occurrences",
        "created_at",
        "last_seen_at",
        "run_column",
        "raw_record",
        "item_hash",
    ]
    readonly_fields = ["item_pretty", "run_column"]
    actions = ["replay", "discard"]

    @admin.display(description="reason")
    def reason_short(self, obj: QuarantinedRecord) -> str:
        return obj.reason if len(obj.reason) <= 120 else obj.reason[:119] + "…"

    @admin.display(description="run", ordering="run__started_at")
    def run_column(self, obj: QuarantinedRecord) -> SafeString | str:
        return run_link(obj.run)

    @admin.display(description="item")
    def item_pretty(self, obj: QuarantinedRecord) -> SafeString:
        return pretty_json(obj.item)

    @admin.action(
        description="Replay (load again with today's mappings and assets)", permissions=["change"]
    )
    def replay(self, request, queryset):
        counts = quarantine_replay(ids=list(queryset.values_list("pk", flat=True)))
        parts = [
            f"{counts['replayed']} item(s) now loaded ({counts['inserted']} inserted, "
            f"{counts['updated']} updated, {counts['unchanged']} unchanged)",
            f"{counts['still_quarantined']} still quarantined",
        ]
        if counts["skipped"]:
            parts.append(f"{counts['skipped']} already replayed")
        if counts["busy"]:
            parts.append(f"{counts['busy']} not tried: their source is being ingested")
        level = messages.SUCCESS
        if counts["still_quarantined"] or counts["busy"]:
            level = messages.WARNING
        self.message_user(request, "Replay: " + "; ".join(parts) + ".", level)

    @admin.action(description="Discard (keep for the record, never load)", permissions=["change"])
    def discard(self, request, queryset):
        count = quarantine_discard(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Discarded {count} open item(s).")


QUARANTINE_SHOWN = 50


@run_page_section("Quarantine")
@admin.display(description="quarantined items")
def quarantined_items(run: Run) -> SafeString | str:
    changelist = reverse("admin:etl_quarantinedrecord_changelist")
    records = list(run.quarantined.order_by("pk")[: QUARANTINE_SHOWN + 1])
    if not records:
        return "-"
    lines = format_html_join(
        mark_safe("<br>"),
        '<a href="{}">{} · {}</a>',
        (
            (
                reverse("admin:etl_quarantinedrecord_change", args=[r.pk]),
                r.reason_code,
                r.reason[:160],
            )
            for r in records[:QUARANTINE_SHOWN]
        ),
    )
    more = (
        f"first {QUARANTINE_SHOWN} shown; " if len(records) > QUARANTINE_SHOWN else ""
    ) + "all of this run's quarantined items"
    return format_html(
        '{}<p><a href="{}?run={}">{}</a></p>', lines, changelist, run.pk, capfirst(more)
    )


@admin.register(RawRecord)
class RawRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    deletable = True
    list_display = ["fetched_at", "source", "page_ref", "item_count", "content_hash"]
    list_filter = ["source"]
    show_full_result_count = False
    ordering = ["-fetched_at"]


@admin.register(SourceLease)
class SourceLeaseAdmin(NotAddedHereMixin, admin.ModelAdmin):
    list_display = ["source", "holder", "renewed_at", "expires_at"]
    readonly_fields = ["source", "holder", "renewed_at", "expires_at"]


@admin.register(SourcePolicy)
class SourcePolicyAdmin(NotAddedHereMixin, admin.ModelAdmin):
    list_display = ["source", "drift_policy", "paused", "paused_reason", "updated_at"]
    list_editable = ["drift_policy", "paused"]
    readonly_fields = ["paused_reason", "paused_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        if not obj.paused:  # an operator lifted the pause: no stale reason stays behind
            obj.paused_reason, obj.paused_at = "", None
        super().save_model(request, obj, form, change)


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
