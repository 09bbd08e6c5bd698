"""Comparing two runs: pure functions of Run rows, each finding with a severity."""

from __future__ import annotations

from decimal import Decimal

from runs.findings import Finding
from runs.models import Run
from runs.selectors import USABLE_STATUSES

# The rules of the original service.
COUNT_CHANGE = 0.5  # record count changed by more than 50%
DURATION_GROWTH = 1.0  # duration up by more than 100%
FAST_RATIO = 0.1  # under 10% of the baseline's duration...
FAST_MIN_BASELINE_S = 2.0  # ...when the baseline took at least this long


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

    if baseline.status in USABLE_STATUSES and candidate.status == Run.Status.FAILED:
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


PRICE_MOVE = 0.10  # a price that moved more than 10% between the two runs
LISTED = 20  # slugs named in a message


def _prices(run: Run) -> dict[str, Decimal | None]:
    return {
        slug: (Decimal(price) if price is not None else None)
        for slug, price in (run.asset_prices or {}).items()
    }


def asset_changes(*, baseline: Run, candidate: Run, threshold: float = PRICE_MOVE) -> dict:
    """Assets that appeared or vanished between two runs, and prices that moved."""
    before, after = _prices(baseline), _prices(candidate)
    moves = []
    for slug in sorted(before.keys() & after.keys()):
        old, new = before[slug], after[slug]
        if old and new is not None:
            change = float((new - old) / old)
            if abs(change) > threshold:
                moves.append(
                    {
                        "slug": slug,
                        "before": float(old),
                        "after": float(new),
                        "change_pct": round(change * 100, 2),
                    }
                )
    moves.sort(key=lambda m: -abs(m["change_pct"]))
    return {
        "appeared": sorted(after.keys() - before.keys()),
        "vanished": sorted(before.keys() - after.keys()),
        "price_moves": moves,
    }


def asset_findings(changes: dict, *, threshold: float = PRICE_MOVE) -> list[Finding]:
    findings = []
    for key, severity in (("vanished", "warning"), ("appeared", "info")):
        slugs = changes[key]
        if slugs:
            named = ", ".join(slugs[:LISTED]) + (" …" if len(slugs) > LISTED else "")
            findings.append(
                Finding(f"assets_{key}", severity, f"{len(slugs)} asset(s) {key}: {named}")
            )
    for move in changes["price_moves"]:
        big = abs(move["change_pct"]) > threshold * 100 * 5
        findings.append(
            Finding(
                "price_move",
                "critical" if big else "warning",
                f"{move['slug']} moved {move['change_pct']:+.1f}% "
                f"({move['before']:g} -> {move['after']:g})",
            )
        )
    return findings
