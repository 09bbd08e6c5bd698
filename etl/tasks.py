"""Celery tasks: thin wrappers around services, taking names and ids, never model instances.

`etl.ingest` is idempotent (pages commit with their checkpoint), so it is acked late and
re-queued if its worker dies. A run that failed on a transient upstream or database error is
retried with exponential backoff and equal jitter, as a new run linked to the failed one.
"""

from __future__ import annotations

import datetime as dt
import logging
import random

from celery import shared_task
from celery.signals import worker_init, worker_process_init
from django.conf import settings
from django.utils import timezone

from etl.pipeline.replay import drift_replay
from etl.pipeline.run import ingest_run
from etl.services.reaper import runs_reap
from etl.services.retention import raw_records_prune
from etl.services.run_retention import runs_prune
from etl.services.schedules import PRUNE_NAME, REAPER_NAME
from etl.tuning import tune_for_throughput
from kasparro.core.catalogue import INGEST_TASK
from runs.models import Run

logger = logging.getLogger(__name__)

# Tuned where a worker starts: its main process before the pool forks (prefork children inherit
# it; a solo or threads pool runs tasks right there), and any pool process started later.
worker_init.connect(tune_for_throughput, weak=False)
worker_process_init.connect(tune_for_throughput, weak=False)


def retry_countdown(retries: int) -> float:
    """Equal jitter over an exponential ceiling, capped below the broker's visibility timeout."""
    ceiling = min(settings.ETL_TASK_RETRY_CAP, settings.ETL_TASK_RETRY_BASE * 2**retries)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


@shared_task(
    name=INGEST_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # bounded by ETL_TASK_MAX_RETRIES below
)
def ingest(self, source: str, trigger: str = "beat", parent_run_id: str | None = None) -> dict:
    """Ingest one source; resume from the checkpoint."""
    run = ingest_run(
        source_name=source,
        trigger=trigger,
        parent_run_id=parent_run_id,
        task_id=self.request.id or "",
    )
    result = {"run_id": str(run.id), "source": run.source, "status": run.status}
    if (
        run.status == Run.Status.FAILED
        and run.retryable  # classified by etl.exceptions.is_retryable
        and self.request.retries < settings.ETL_TASK_MAX_RETRIES
    ):
        countdown = retry_countdown(self.request.retries)
        # Recorded so that the reaper queues the retry itself if the worker holding its
        # countdown dies (the broker would give it back only after its visibility timeout).
        Run.objects.filter(pk=run.pk).update(
            retry_at=timezone.now() + dt.timedelta(seconds=countdown)
        )
        logger.warning(
            "transient failure, retrying",
            extra={"run_id": str(run.id), "source": run.source, "countdown": round(countdown)},
        )
        raise self.retry(
            args=[source],
            kwargs={"trigger": Run.Trigger.RETRY, "parent_run_id": str(run.id)},
            countdown=countdown,
        )
    return result


@shared_task(name=REAPER_NAME)
def reap() -> int:
    """Fail runs whose process died and queue their recovery; queue orphaned retries."""
    return len(runs_reap())


@shared_task(name=PRUNE_NAME)
def prune() -> dict:
    """Delete expired raw pages that no replay needs, then expired runs nothing needs, in
    batches (etl.services.retention, run_retention).
    Stopped by its time limit, it has kept every batch it committed; the next one goes on."""
    report = raw_records_prune()
    logger.info(
        "raw pages pruned",
        extra={
            "pages": report.pages,
            "bodies": report.bodies,
            "bytes": report.page_bytes + report.body_bytes,
            "kept_for_replay": report.kept_for_replay,
        },
    )
    runs = runs_prune()
    if runs.cutoff is not None:
        logger.info("runs pruned", extra={"runs": runs.runs, "kept": runs.kept})
    return {
        "pages": report.pages,
        "bodies": report.bodies,
        "kept": report.kept_for_replay,
        "runs": runs.runs,
    }


@shared_task(name="etl.replay_drift", acks_late=True, reject_on_worker_lost=True)
def replay_drift(event_id: int) -> dict:
    """Replay the runs a drift event affected (idempotent)."""
    run = drift_replay(event_id=event_id)
    return {"run_id": str(run.id), "status": run.status}
