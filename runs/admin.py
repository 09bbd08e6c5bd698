"""Run history for operators: read-only rows with everything a run recorded, and two actions
(retry a failed run, run a source now) that queue work through services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import capfirst

from kasparro.core.admin_utils import ReadOnlyAdminMixin, pretty_json
from kasparro.core.errors import ApplicationError
from runs.models import Run
from runs.services import run_retry, source_run_now

QUARANTINE_SHOWN = 50


def run_link(run: Run) -> SafeString:
    return format_html('<a href="{}">{}</a>', reverse("admin:runs_run_change", args=[run.pk]), run)


@admin.register(Run)
class RunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    with_actions = True
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
        "drift_findings",
        "error_message_short",
    ]
    list_filter = ["source", "status", "trigger", "started_at"]
    search_fields = ["id", "error_message", "error_class"]
    date_hierarchy = "started_at"
    ordering = ["-started_at"]
    actions = ["retry", "run_now"]
    fieldsets = [
        (None, {"fields": ["id", "source", "status", "trigger", "parent_link", "retries"]}),
        (
            "Timings",
            {"fields": ["started_at", "finished_at", "heartbeat_at", "retry_at", "duration"]},
        ),
        (
            "Counters",
            {
                "fields": [
                    "pages",
                    "items_fetched",
                    "items_inserted",
                    "items_updated",
                    "items_unchanged",
                    "items_quarantined",
                    "drift_findings",
                    "freshness_lag_seconds",
                ]
            },
        ),
        ("Checkpoint", {"fields": ["checkpoint_before_pretty", "checkpoint_after_pretty"]}),
        ("Error", {"fields": ["error_class", "error_message"]}),
        ("Findings", {"fields": ["findings_table", "drift_events_links"]}),
        ("Quarantine", {"fields": ["quarantined_items"]}),
        ("Worker", {"fields": ["task_id", "host"]}),
    ]
    readonly_fields = [
        "parent_link",
        "retries",
        "duration",
        "checkpoint_before_pretty",
        "checkpoint_after_pretty",
        "findings_table",
        "drift_events_links",
        "quarantined_items",
    ]

    # --- List columns -------------------------------------------------------------------------

    @admin.display(description="duration")
    def duration(self, obj: Run) -> str:
        seconds = obj.duration_seconds
        return "-" if seconds is None else f"{seconds:.1f}s"

    @admin.display(description="error")
    def error_message_short(self, obj: Run) -> str:
        message = obj.error_message
        return message if len(message) <= 120 else message[:119] + "…"

    # --- Detail page --------------------------------------------------------------------------

    @admin.display(description="parent run")
    def parent_link(self, obj: Run) -> SafeString | str:
        return run_link(obj.parent) if obj.parent_id else "-"

    @admin.display(description="retries and replays (child runs)")
    def retries(self, obj: Run) -> SafeString | str:
        children = obj.children.order_by("started_at")
        return format_html_join(", ", "{}", ((run_link(child),) for child in children)) or "-"

    @admin.display(description="checkpoint before")
    def checkpoint_before_pretty(self, obj: Run) -> SafeString:
        return pretty_json(obj.checkpoint_before)

    @admin.display(description="checkpoint after")
    def checkpoint_after_pretty(self, obj: Run) -> SafeString:
        return pretty_json(obj.checkpoint_after)

    @admin.display(description="anomaly findings")
    def findings_table(self, obj: Run) -> SafeString | str:
        findings = [f for f in obj.findings or [] if isinstance(f, dict)]
        if not findings:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((f.get("rule", ""), f.get("severity", ""), f.get("message", "")) for f in findings),
        )
        return format_html(
            "<table><thead><tr><th>rule</th><th>severity</th><th>message</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="drift events")
    def drift_events_links(self, obj: Run) -> SafeString | str:
        events = obj.drift_events.order_by("-last_seen")
        rows = (
            (
                reverse("admin:etl_driftevent_change", args=[e.pk]),
                e.severity,
                e.fingerprint,
                e.status,
            )
            for e in events
        )
        return format_html_join(mark_safe("<br>"), '<a href="{}">{}: {}</a> ({})', rows) or "-"

    @admin.display(description="quarantined items")
    def quarantined_items(self, obj: Run) -> SafeString | str:
        changelist = reverse("admin:etl_quarantinedrecord_changelist")
        records = list(obj.quarantined.order_by("pk")[: QUARANTINE_SHOWN + 1])
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
            '{}<p><a href="{}?run={}">{}</a></p>', lines, changelist, obj.pk, capfirst(more)
        )

    # --- Actions ------------------------------------------------------------------------------

    @admin.action(description="Retry (resume from the checkpoint)", permissions=["change"])
    def retry(self, request, queryset):
        queued = 0
        for run in queryset:
            try:
                run_retry(run_id=run.pk)
            except ApplicationError as exc:
                self.message_user(request, f"Skipped: {exc.message}", messages.WARNING)
            else:
                queued += 1
        if queued:
            self.message_user(
                request,
                f"Queued {queued} retry run(s); they resume from the "
                "checkpoint once a worker picks them up.",
            )

    @admin.action(description="Run now (the sources of the selected runs)", permissions=["change"])
    def run_now(self, request, queryset):
        sources = sorted(set(queryset.values_list("source", flat=True)))
        for source in sources:
            source_run_now(source=source)
        self.message_user(request, f"Queued a run of {', '.join(sources) or 'nothing'}.")
