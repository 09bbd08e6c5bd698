"""Comparing two runs: pure functions of Run rows, each finding with a severity."""

from __future__ import annotations

import dataclasses

from runs.models import Run

# The rules of the original service.
COUNT_CHANGE = 0.5  # record count changed by more than 50%
DURATION_GROWTH = 1.0  # duration up by more than 100%
FAST_RATIO = 0.1  # under 10% of the baseline's duration...
FAST_MIN_BASELINE_S = 2.0  # ...when the baseline took at least this long


@dataclasses.dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # info | warning | critical
    message: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _records(run: Run) -> int:
    return run.items_fetched


def runs_compare(*, baseline: Run, candidate: Run) -> list[Finding]:
    """What changed from `baseline` to `candidate` that an operator should look at."""
    findings: list[Finding] = []
    if baseline.source != candidate.source:
        findings.append(
            Finding(
                "different_sources",
                "info",
                f"comparing a {baseline.source} run with a {candidate.source} run",
            )
        )

    before, after = _records(baseline), _records(candidate)
    if before and abs(after - before) / before > COUNT_CHANGE:
        findings.append(
            Finding(
                "record_count_changed",
                "warning",
                f"records went from {before} to {after} ({(after - before) / before:+.0%})",
            )
        )

    d1, d2 = baseline.duration_seconds, candidate.duration_seconds
    if d1 and d2 is not None:
        if (d2 - d1) / d1 > DURATION_GROWTH:
            findings.append(
                Finding(
                    "duration_increased",
                    "warning",
                    f"duration went from {d1:.1f}s to {d2:.1f}s ({(d2 - d1) / d1:+.0%})",
                )
            )
        if d1 >= FAST_MIN_BASELINE_S and d2 < d1 * FAST_RATIO:
            findings.append(
                Finding(
                    "suspiciously_fast",
                    "warning",
                    f"finished in {d2:.2f}s against {d1:.1f}s before",
                )
            )

    ok = (Run.Status.SUCCESS, Run.Status.PARTIAL)
    if baseline.status in ok and candidate.status == Run.Status.FAILED:
        findings.append(
            Finding(
                "success_to_failure",
                "critical",
                f"{baseline.status} turned to failed: {candidate.error_message[:200]}",
            )
        )
    if candidate.status == Run.Status.SUCCESS and _records(candidate) == 0:
        findings.append(
            Finding("success_without_records", "warning", "succeeded with zero records")
        )
    return findings
