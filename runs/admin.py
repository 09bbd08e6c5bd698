"""Run history for operators: read-only rows with everything a run recorded, and two actions
(retry a failed or partial run, run a source now) that queue work through services.

Apps that record more about a run add it to the run's page with `run_page_section` (etl shows
the run's drift events and quarantined items): they know runs, runs does not know them."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from kasparro.core.admin_utils import (
    BoundedCountPaginator,
    ReadOnlyAdminMixin,
    pretty_json,
    status_column,
)
from kasparro.core.catalogue import source_entry, source_names
from kasparro.core.errors import ApplicationError
from runs.models import RUN_COUNTERS, Run
from runs.selectors import run_timeline
from runs.services import run_retry, source_run_now

RunField = Callable[[Run], SafeString | str]

# (fieldset title, field) in the order registered; see run_page_section.
RUN_PAGE_SECTIONS: list[tuple[str, RunField]] = []


def run_link(run: Run | None) -> SafeString | str:
    """A link to the run's admin page, "-" without a run."""
    if run is None:
        return "-"
    return format_html('<a href="{}">{}</a>', reverse("admin:runs_run_change", args=[run.pk]), run)


def run_page_section(fieldset: str) -> Callable[[RunField], RunField]:
    """Decorator: show `field(run)`, a function decorated with @admin.display, read-only on
    every run's page, in the fieldset titled `fieldset`: after that fieldset's fields if the
    page has one, else in a fieldset of its own, placed before the last ("Worker"). The
    function's name is the field's name on the page (its CSS class)."""

    def register(field: RunField) -> RunField:
        RUN_PAGE_SECTIONS.append((fieldset, field))
        return field

    return register


class SourceFilter(admin.SimpleListFilter):
    """The catalogue's sources: no DISTINCT over the run history."""

    title = "source"
    parameter_name = "source"

    def lookups(self, request, model_admin):
        return [(name, source_entry(name).label) for name in source_names()]

    def queryset(self, request, queryset):
        return queryset.filter(source=self.value()) if self.value() else queryset


@admin.register(Run)
class RunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    with_actions = True
    list_display = [
        "started_at",
        "source",
        status_column("status"),
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
    list_filter = [SourceFilter, "status", "trigger", "started_at"]
    # A run id (whole), or words of an error: searched among the runs that have one (a partial
    # index of them), not the whole history. See get_search_results.
    search_fields = ["error_message", "error_class"]
    search_help_text = "A run id, or words of its error message or class."
    date_hierarchy = "started_at"
    ordering = ["-started_at"]
    show_full_result_count = False
    paginator = BoundedCountPaginator
    actions = ["retry", "run_now"]
    change_list_template = "admin/runs/run/change_list.html"
    TIMELINE_RUNS = 100

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(pk=uuid.UUID(term)), False
        except ValueError:
            pass
        queryset = queryset.exclude(error_message="")
        return super().get_search_results(request, queryset, term)

    def changelist_view(self, request, extra_context=None):
        """A small chart of the newest runs above the list (one query)."""
        extra_context = {
            **(extra_context or {}),
            "timeline": run_timeline(limit=self.TIMELINE_RUNS),
        }
        return super().changelist_view(request, extra_context)

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
                    *RUN_COUNTERS,
                    "freshness_lag_seconds",
                ]
            },
        ),
        ("Checkpoint", {"fields": ["checkpoint_before_pretty", "checkpoint_after_pretty"]}),
        ("Error", {"fields": ["error_class", "retryable", "error_message"]}),
        ("Findings", {"fields": ["findings_table"]}),
        # Sections of other apps (run_page_section) go here.
        ("Worker", {"fields": ["task_id", "host"]}),
    ]
    readonly_fields = [
        "parent_link",
        "retries",
        "duration",
        "checkpoint_before_pretty",
        "checkpoint_after_pretty",
        "findings_table",
    ]

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (title, {**options, "fields": list(options["fields"])})
            for title, options in super().get_fieldsets(request, obj)
        ]
        for title, field in RUN_PAGE_SECTIONS:
            options = next((o for t, o in fieldsets if t == title), None)
            if options is None:
                fieldsets.insert(len(fieldsets) - 1, (title, {"fields": [field]}))
            else:
                options["fields"].append(field)
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        sections = [field for _, field in RUN_PAGE_SECTIONS]
        return [*super().get_readonly_fields(request, obj), *sections]

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
        return run_link(obj.parent)

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
