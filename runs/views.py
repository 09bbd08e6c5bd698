"""The dashboard's pipeline-health page at `/pipeline/` (public summary; details stay in admin):
per source the last run, its status, staleness against the schedule and the next scheduled run;
a timeline of recent runs (duration and items, coloured by status, anomaly findings marked)."""

from __future__ import annotations

import datetime as dt

from django.db.models import Sum
from django.shortcuts import render
from django.utils import timezone

from kasparro.core.catalogue import source_entry, source_names
from runs.health import source_schedules
from runs.models import Run
from runs.selectors import run_timeline, runs_last_per_source

TIMELINE_RUNS = 200
COUNTS_WINDOW = dt.timedelta(days=7)


def pipeline(request):
    now = timezone.now()
    schedules = source_schedules()
    sources = []
    for source, info in runs_last_per_source(sources=source_names()).items():
        staleness = info["staleness_seconds"]
        interval = schedules[source].interval_seconds
        sources.append(
            {
                "name": source,
                "label": source_entry(source).label,
                "run": info["last_run"],
                "last_usable_at": info["last_usable_at"],
                "staleness": dt.timedelta(seconds=staleness) if staleness is not None else None,
                "schedule_minutes": round(interval / 60),
                "stale": staleness is None or staleness > 2 * interval,
                "next_run": schedules[source].next_run,
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
