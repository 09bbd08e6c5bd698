"""Reads over Run rows."""

from __future__ import annotations

import datetime as dt

from django.db.models import Max, Q
from django.utils import timezone

from runs.models import Run


def runs_last_per_source(*, sources: list[str]) -> dict[str, dict]:
    """Per source: the last finished run and the time of the last success, in one query each."""
    summary = {
        row["source"]: row
        for row in Run.objects.filter(source__in=sources)
        .values("source")
        .annotate(
            last_started=Max("started_at", filter=~Q(status=Run.Status.SKIPPED)),
            last_success=Max("finished_at", filter=Q(status=Run.Status.SUCCESS)),
            last_usable=Max(
                "finished_at", filter=Q(status__in=[Run.Status.SUCCESS, Run.Status.PARTIAL])
            ),
        )
    }
    last_runs = {
        run.source: run
        for run in Run.objects.filter(
            source__in=sources,
            started_at__in=[row["last_started"] for row in summary.values() if row["last_started"]],
        )
    }
    now = timezone.now()
    result = {}
    for source in sources:
        row = summary.get(source, {})
        run = last_runs.get(source)
        usable: dt.datetime | None = row.get("last_usable")
        result[source] = {
            "last_run": run,
            "last_success_at": row.get("last_success"),
            "last_usable_at": usable,
            "staleness_seconds": (now - usable).total_seconds() if usable else None,
        }
    return result
