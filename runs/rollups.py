"""The run rollups (runs.models.SourceRollup, RunTally), kept as runs start and finish so that
no read aggregates the whole run history: /health, /stats, /metrics and the pipeline page cost
the same at 100 runs as at 100,000.

Every write to a run's status goes through runs.services, which calls these in the same
transaction as the run's own write: `started` when a run starts, `finished` when its status
changes from running (or, rarely, from one final status to another), `recorded` for a run
written whole (a skip, an imported or backfilled row)."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Greatest

from runs.models import DURATION_BUCKETS, RUN_COUNTERS, Run, RunTally, SourceRollup
from runs.selectors import USABLE_STATUSES


def started(run: Run) -> None:
    """A run began: one more running run; the source's last run if it is the newest."""
    _bump(run.source, Run.Status.RUNNING, runs=1)
    _newest_run(run)


def finished(run: Run, *, before: Run) -> None:
    """`run` (as saved) was `before` (a copy taken before the change): move it out of that
    status's tally into its own, and advance the source's last success, failure and usable
    times."""
    if before.status == Run.Status.RUNNING:
        _bump(run.source, before.status, runs=-1)
    elif before.status != run.status:
        _bump(run.source, before.status, **_contribution(before, sign=-1))
    else:
        return  # finished twice with the same status: counted once
    _bump(run.source, run.status, **_contribution(run))
    _finished_times(run)


def recorded(run: Run) -> None:
    """A run written whole (never seen running): count it and its times."""
    _bump(run.source, run.status, **_contribution(run))
    if run.status != Run.Status.SKIPPED:
        _newest_run(run)
    _finished_times(run)


def _contribution(run: Run, sign: int = 1) -> dict[str, float]:
    deltas: dict[str, float] = {"runs": sign}
    for name in RUN_COUNTERS:
        deltas[name] = sign * getattr(run, name)
    if run.finished_at is not None and run.status != Run.Status.RUNNING:
        seconds = max(0.0, (run.finished_at - run.started_at).total_seconds())
        deltas["duration_seconds"] = sign * seconds
        deltas[_bucket(seconds)] = sign
    return deltas


def _bucket(seconds: float) -> str:
    for bound in DURATION_BUCKETS:
        if seconds <= bound:
            return f"le_{bound}"
    return "le_inf"


def _bump(source: str, status: str, **deltas: float) -> None:
    """Add `deltas` to the (source, status) tally, creating it on first use; concurrent
    writers each add theirs (an UPDATE with F(), no read-modify-write)."""
    changes = {name: F(name) + value for name, value in deltas.items() if value}
    if not changes:
        return
    tally = RunTally.objects.filter(source=source, status=status)
    if tally.update(**changes):
        return
    try:
        with transaction.atomic():
            RunTally.objects.create(source=source, status=status, **deltas)
    except IntegrityError:  # another writer created it first
        tally.update(**changes)


def _rollup(source: str) -> None:
    SourceRollup.objects.get_or_create(source=source)


def _newest_run(run: Run) -> None:
    _rollup(run.source)
    SourceRollup.objects.filter(
        Q(last_run_started_at__isnull=True) | Q(last_run_started_at__lte=run.started_at),
        source=run.source,
    ).update(last_run=run, last_run_started_at=run.started_at)


def _finished_times(run: Run) -> None:
    if run.finished_at is None:
        return
    field = {
        Run.Status.SUCCESS: "last_success_at",
        Run.Status.FAILED: "last_failure_at",
    }.get(run.status)
    updates = {}
    if field:
        updates[field] = _later(field, run.finished_at)
    if run.status in USABLE_STATUSES:
        updates["last_usable_at"] = _later("last_usable_at", run.finished_at)
    if updates:
        _rollup(run.source)
        SourceRollup.objects.filter(source=run.source).update(**updates)


def _later(field: str, value):
    return Greatest(Coalesce(F(field), value), value)
