"""Quarantined items: read-only, replayed or discarded by actions; and the quarantine section
of a run's page."""

from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import capfirst

from etl.models import QuarantinedRecord
from etl.pipeline.replay import quarantine_replay
from etl.services.quarantine import quarantine_discard
from kasparro.core.admin_utils import ReadOnlyAdminMixin, pretty_json, status_column
from runs.admin import run_link, run_page_section
from runs.models import Run


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
        status_column("status"),
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


# --- On a run's page ---------------------------------------------------------------------------

QUARANTINE_SHOWN = 50  # then a link to all of the run's quarantined items


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
