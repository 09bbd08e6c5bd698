"""Scoring a run against the trailing window of its source: the scoring (run_scores,
run_anomalies) is pure functions over Run rows; history_of reads the window and run_score_store
stores a run's findings.

Each metric of the run is compared with the same metric over the source's previous usable runs
(success or partial; replays left out). With a history that varies, a z-score of 3 or more is a
warning and 6 or more critical; with a history that does not vary, a change of more than half
its value (and at least a floor per metric) is a warning. Metrics where only one direction is bad
(duration, quarantine rate, drift, freshness lag) fire only in that direction; too short a
history fires nothing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

from runs.findings import Finding
from runs.models import Run
from runs.selectors import usable

WINDOW = 20
MIN_HISTORY = 5
Z_WARNING, Z_CRITICAL = 3.0, 6.0
CONSTANT_CHANGE = 0.5


def _quarantine_rate(run: Run) -> float | None:
    return run.items_quarantined / run.items_fetched if run.items_fetched else None


# name -> (value of a run, "both" | "high": which direction is an anomaly, unit for messages,
#          the smallest change worth a word when the history never varied)
METRICS: dict[str, tuple[Callable[[Run], float | None], str, str, float]] = {
    "items": (lambda r: float(r.items_fetched), "both", "items", 1.0),
    "duration": (lambda r: r.duration_seconds, "high", "s", 1.0),
    "quarantine_rate": (_quarantine_rate, "high", "", 0.05),
    "drift": (lambda r: float(r.drift_findings), "high", "findings", 1.0),
    "freshness_lag": (lambda r: r.freshness_lag_seconds, "high", "s", 60.0),
}


def run_scores(run: Run, history: list[Run]) -> dict[str, float | None]:
    """z-score of each metric against the history (None where it cannot be computed)."""
    scores: dict[str, float | None] = {}
    for name, (metric, *_) in METRICS.items():
        values = [v for v in (metric(h) for h in history) if v is not None]
        value = metric(run)
        if value is None or len(values) < MIN_HISTORY:
            scores[name] = None
            continue
        spread = statistics.pstdev(values)
        scores[name] = (value - statistics.fmean(values)) / spread if spread > 0 else None
    return scores


def run_anomalies(run: Run, history: list[Run]) -> list[Finding]:
    findings: list[Finding] = []
    for name, (metric, direction, unit, floor) in METRICS.items():
        values = [v for v in (metric(h) for h in history) if v is not None]
        value = metric(run)
        if value is None or len(values) < MIN_HISTORY:
            continue
        mean = statistics.fmean(values)
        spread = statistics.pstdev(values)
        shown = (
            f"{value:.3g}{unit and ' ' + unit} against a mean of {mean:.3g}{unit and ' ' + unit}"
        )
        if spread > 0:
            z = (value - mean) / spread
            if direction == "high" and z < 0:
                continue
            if abs(z) >= Z_WARNING:
                severity = "critical" if abs(z) >= Z_CRITICAL else "warning"
                findings.append(
                    Finding(
                        f"anomalous_{name}",
                        severity,
                        f"{name.replace('_', ' ')} {shown} over {len(values)} runs (z = {z:+.1f})",
                    )
                )
        else:
            change = value - mean
            if direction == "high" and change <= 0:
                continue
            relative = abs(change) / abs(mean) if mean else math.inf
            if abs(change) >= floor and relative > CONSTANT_CHANGE:
                findings.append(
                    Finding(
                        f"anomalous_{name}",
                        "warning",
                        f"{name.replace('_', ' ')} {shown}, constant over {len(values)} runs",
                    )
                )
    return findings


def history_of(run: Run, window: int = WINDOW) -> list[Run]:
    """The source's usable runs (success or partial) started before this one, replays left
    out, newest first, at most `window` of them (one query)."""
    return list(
        Run.objects.filter(usable(), source=run.source, started_at__lt=run.started_at)
        .exclude(trigger=Run.Trigger.REPLAY)
        .order_by("-started_at")[:window]
    )


def run_score_store(*, run_id) -> list[Finding]:
    """Score a finished run against its history and store the findings on it."""
    run = Run.objects.get(pk=run_id)
    if run.status == Run.Status.SKIPPED:
        return []
    findings = run_anomalies(run, history_of(run))
    Run.objects.filter(pk=run_id).update(findings=[f.as_dict() for f in findings])
    return findings
