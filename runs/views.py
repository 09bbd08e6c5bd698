"""The dashboard's pipeline-health page at `/pipeline/` (public summary; details stay in admin):
per source the last run, its status, staleness against the schedule and the next scheduled run;
a timeline of recent runs (duration and items, coloured by status, anomaly findings marked)."""

from __future__ import annotations

import datetime as dt

from django.db.models import Sum
from django.shortcuts import render
from django.utils import timezone

from kasparro.core.catalogue import schedule_name, source_entry, source_names
from runs.health import schedule_intervals
from runs.models import Run
from runs.selectors import run_timeline, runs_last_per_source

TIMELINE_RUNS = 200
COUNTS_WINDOW = dt.timedelta(days=7)


def _next_runs() -> dict[str, dt.datetime | None]:
    """When beat will next start each source: its last start plus its interval."""
    from django_celery_beat.models import PeriodicTask

    names = {schedule_name(source): source for source in source_names()}
    upcoming: dict[str, dt.datetime | None] = dict.fromkeys(source_names())
    for task in PeriodicTask.objects.filter(name__in=names, enabled=True).select_related(
        "interval"
    ):
        if task.interval is not None:
            every = task.interval.schedule.run_every
            upcoming[names[task.name]] = (task.last_run_at or timezone.now()) + every
    return upcoming


def pipeline(request):
    now = timezone.now()
    intervals = schedule_intervals()
    upcoming = _next_runs()
    sources = []
    for source, info in runs_last_per_source(sources=source_names()).items():
        staleness = info["staleness_seconds"]
        sources.append(
            {
                "name": source,
                "label": source_entry(source).label,
                "run": info["last_run"],
                "last_usable_at": info["last_usable_at"],
                "staleness": dt.timedelta(seconds=staleness) if staleness is not None else None,
                "schedule_minutes": round(intervals[source] / 60),
                "stale": staleness is None or staleness > 2 * intervals[source],
                "next_run": upcoming[source],
            }
        )
    timeline = run_timeline(limit=TIMELINE_RUNS)
    counts = Run.objects.filter(started_at__gte=now - COUNTS_WINDOW).aggregate(
        quarantined=Sum("items_quarantined"), drift=Sum("drift_findings")
    )
    return render(
        request,
        "dashboard/pipeline.html",
        {
            "sources": sources,
            "timeline": timeline,
            "quarantined": counts["quarantined"] or 0,
            "drift": counts["drift"] or 0,
            "window_days": COUNTS_WINDOW.days,
        },
    )
