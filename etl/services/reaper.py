"""Runs whose process died, and retries whose worker died holding them.

A run left `running` is dead once its claim on the source can be taken (etl/services/leases.py:
at once on PostgreSQL, within `ETL_LEASE_SECONDS` on SQLite). The reaper takes the claim,
fails such runs as abandoned and queues a recovery run (trigger `retry`, parent = the dead run)
that resumes from the checkpoint, so the work does not wait for the next scheduled run or for
the broker's visibility timeout. A run that starts on the source does the same for the dead
runs it finds, and is itself their recovery.

A failed run whose automatic retry was due more than `RETRY_GRACE` ago and has not started
(the worker holding its countdown died: the broker would give it back only after its
visibility timeout) gets its recovery queued too.

Bounds with the shipped defaults (lease 45 s, reaper every minute): a dead run is failed and
its recovery queued within about 1 minute on PostgreSQL and 2 minutes on SQLite; an orphaned
retry within `RETRY_GRACE` plus a minute of its due time.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from django.db import transaction
from django.utils import timezone

from etl.exceptions import RunAbandoned
from etl.services.leases import SourceBusy, source_claimed
from runs.models import Run
from runs.services import run_enqueue, runs_fail_running

logger = logging.getLogger(__name__)

ABANDONED = "abandoned: its process died before the run finished; the next run resumes its work"
ERROR_CLASS = f"{RunAbandoned.__module__}.{RunAbandoned.__qualname__}"
RETRY_GRACE = dt.timedelta(minutes=2)


def runs_fail_abandoned(*, source: str, except_run: uuid.UUID | None = None) -> uuid.UUID | None:
    """Fail the source's running runs. Call only while holding its claim, which proves them
    dead. Returns the newest of them, if any."""
    newest = runs_fail_running(
        source=source, error_class=ERROR_CLASS, message=ABANDONED, except_run=except_run
    )
    if newest is not None:
        logger.warning("abandoned runs failed", extra={"source": source})
    return newest


def runs_reap() -> list[uuid.UUID]:
    """Fail dead runs and queue their recovery; queue orphaned retries. Returns the runs
    whose recovery was queued."""
    running = Run.objects.filter(status=Run.Status.RUNNING)
    recovered = []
    for name in sorted(set(running.values_list("source", flat=True))):
        try:
            with source_claimed(source=name):
                dead = runs_fail_abandoned(source=name)
        except SourceBusy:
            continue  # a live run holds it: nothing is dead
        if dead is not None:
            run_enqueue(source=name, trigger=Run.Trigger.RETRY, parent_run_id=str(dead))
            recovered.append(dead)
    return recovered + _retries_orphaned()


def _retries_orphaned() -> list[uuid.UUID]:
    # retry_at is set on few rows: its partial index keeps this a probe, not a scan of runs.
    overdue = Run.objects.filter(
        retry_at__lt=timezone.now() - RETRY_GRACE, status=Run.Status.FAILED
    ).exclude(children__isnull=False)
    queued = []
    for run_id, name in overdue.values_list("pk", "source"):
        with transaction.atomic():
            if Run.objects.filter(pk=run_id, retry_at__isnull=False).update(retry_at=None):
                run_enqueue(source=name, trigger=Run.Trigger.RETRY, parent_run_id=str(run_id))
                queued.append(run_id)
    if queued:
        logger.warning("orphaned retries queued", extra={"count": len(queued)})
    return queued
