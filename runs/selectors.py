"""Reads over Run rows."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, F, FloatField, Func, Q, Sum
from django.utils import timezone

from runs.models import Run, SourceRollup

# A usable run: its data can be relied on, because it succeeded or loaded part of its pages
# (partial). Staleness, durations, anomaly histories and comparisons count usable runs only.
USABLE_STATUSES = (Run.Status.SUCCESS, Run.Status.PARTIAL)


def usable() -> Q:
    """The condition a usable run meets: for `.filter()` or an aggregate's `filter=`."""
    return Q(status__in=USABLE_STATUSES)


def runs_last_per_source(*, sources: list[str]) -> dict[str, dict]:
    """Per source: the last run that was not skipped (it may still be running), when the last
    success and the last usable run finished, and the staleness since the latter. One query,
    of the rollups (runs.rollups): the same at 100 runs as at a million."""
    rollups = {
        r.source: r
        for r in SourceRollup.objects.filter(source__in=sources).select_related("last_run")
    }
    now = timezone.now()
    result = {}
    for source in sources:
        rollup = rollups.get(source) or SourceRollup(source=source)
        usable: dt.datetime | None = rollup.last_usable_at
        result[source] = {
            "last_run": rollup.last_run,
            "last_success_at": rollup.last_success_at,
            "last_failure_at": rollup.last_failure_at,
            "last_usable_at": usable,
            "staleness_seconds": (now - usable).total_seconds() if usable else None,
        }
    return result


class RunSeconds(Func):
    """A run's duration in seconds, as a float computed by the database: reading two aware
    timestamps per run cost /stats more than its queries (8 ms for a week of runs)."""

    output_field = FloatField()

    def __init__(self) -> None:
        super().__init__(F("finished_at"), F("started_at"))

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler, connection, template="EXTRACT(EPOCH FROM (%(expressions)s))::float8",
            arg_joiner=" - ", **extra,
        )  # fmt: skip

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(
            compiler, connection, template="(julianday(%(expressions)s)) * 86400.0",
            arg_joiner=") - julianday(", **extra,
        )  # fmt: skip


def run_list(
    *,
    sources: list[str] | None = None,
    statuses: list[str] | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
):
    qs = Run.objects.all()
    if sources:
        qs = qs.filter(source__in=sources)
    if statuses:
        qs = qs.filter(status__in=statuses)
    if since:
        qs = qs.filter(started_at__gte=since)
    if until:
        qs = qs.filter(started_at__lt=until)
    return qs.order_by("-started_at")


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def runs_stats(*, sources: list[str], window: dt.timedelta, recent: int = 10) -> dict:
    """Per source over the window: runs by status, items, mean and p95 duration (index ranges
    of the window's runs: the cost follows the window, not the history); last success and
    failure and staleness from the rollups; plus the most recent runs. Four queries."""
    now = timezone.now()
    since = now - window
    in_window = Run.objects.filter(source__in=sources, started_at__gte=since)
    per_source: dict[str, dict] = {
        s: {
            "runs": {status: 0 for status in Run.Status.values},
            "items_fetched": 0,
            "items_inserted": 0,
            "items_updated": 0,
            "items_quarantined": 0,
            "drift_findings": 0,
            "last_success_at": None,
            "last_failure_at": None,
            "mean_duration_seconds": None,
            "p95_duration_seconds": None,
            "staleness_seconds": None,
        }
        for s in sources
    }
    for row in in_window.values("source", "status").annotate(
        n=Count("id"),
        fetched=Sum("items_fetched"),
        inserted=Sum("items_inserted"),
        updated=Sum("items_updated"),
        quarantined=Sum("items_quarantined"),
        drift=Sum("drift_findings"),
    ):
        entry = per_source[row["source"]]
        entry["runs"][row["status"]] = row["n"]
        entry["items_fetched"] += row["fetched"] or 0
        entry["items_inserted"] += row["inserted"] or 0
        entry["items_updated"] += row["updated"] or 0
        entry["items_quarantined"] += row["quarantined"] or 0
        entry["drift_findings"] += row["drift"] or 0

    for source, last in runs_last_per_source(sources=sources).items():
        entry = per_source[source]
        entry["last_success_at"] = last["last_success_at"]
        entry["last_failure_at"] = last["last_failure_at"]
        if last["staleness_seconds"] is not None:
            entry["staleness_seconds"] = round(last["staleness_seconds"], 1)

    durations: dict[str, list[float]] = {s: [] for s in sources}
    for source, seconds in in_window.filter(usable(), finished_at__isnull=False).values_list(
        "source", RunSeconds()
    )[:10_000]:
        durations[source].append(seconds)
    for source, values in durations.items():
        if values:
            per_source[source]["mean_duration_seconds"] = round(sum(values) / len(values), 3)
            per_source[source]["p95_duration_seconds"] = round(_percentile(values, 0.95), 3)

    return {
        "window_start": since,
        "sources": per_source,
        "recent_runs": list(Run.objects.order_by("-started_at")[:recent]),
    }


def run_timeline(*, limit: int) -> list[dict]:
    """The newest `limit` runs, oldest first, for a timeline chart: source, status, start,
    duration, items fetched and the messages of their anomaly findings. One query."""
    recent = Run.objects.order_by("-started_at").values(
        "source", "status", "started_at", "finished_at", "items_fetched", "findings"
    )[:limit]
    return [
        {
            "source": run["source"],
            "status": run["status"],
            "started_at": run["started_at"].isoformat(),
            "seconds": (run["finished_at"] - run["started_at"]).total_seconds()
            if run["finished_at"]
            else None,
            "items": run["items_fetched"],
            "findings": [f.get("message", "") for f in run["findings"] or []],
        }
        for run in reversed(list(recent))
    ]
