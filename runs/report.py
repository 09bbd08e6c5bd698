"""What /compare-runs answers about two runs: the comparison's findings and asset changes
(runs/comparison.py), and each run scored against its source's history (runs/anomaly.py)."""

from __future__ import annotations

from runs.anomaly import history_of, run_anomalies, run_scores
from runs.comparison import PRICE_MOVE, asset_changes, asset_findings, runs_compare
from runs.models import Run


def runs_report(*, baseline: Run, candidate: Run, threshold: float = PRICE_MOVE) -> dict:
    """Rule findings, per-asset changes, and each run scored against its source's trailing
    window (which reads each run's history: one query per run)."""
    changes = asset_changes(baseline=baseline, candidate=candidate, threshold=threshold)
    findings = runs_compare(baseline=baseline, candidate=candidate)
    findings += asset_findings(changes, threshold=threshold)
    scores, anomalies = {}, {}
    for label, run in (("run_1", baseline), ("run_2", candidate)):
        history = history_of(run)
        scores[label] = run_scores(run, history)
        anomalies[label] = [f.as_dict() for f in run_anomalies(run, history)]
    return {
        "findings": [f.as_dict() for f in findings],
        "scores": scores,
        "anomalies": anomalies,
        "asset_changes": changes,
    }
