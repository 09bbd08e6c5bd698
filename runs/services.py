"""Writes to Run rows: start, count a committed page, finish, skip, fail the abandoned; and the
operator's requests for new runs (retry a run, run a source now), enqueued by task name since
`runs` never imports `etl`. Every change of a run's status is made here, with its rollups
(runs.rollups) and the data version (crypto.versions) in the same transaction."""

from __future__ import annotations

import copy
import os
import socket
import uuid

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from crypto.versions import data_version_advance
from kasparro.core.catalogue import INGEST_TASK
from kasparro.core.errors import ApplicationError, NotFoundError
from runs import rollups
from runs.models import RUN_COUNTERS, Run


def _host() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:255]


def run_start(
    *,
    source: str,
    trigger: str,
    parent_id: uuid.UUID | str | None = None,
    task_id: str = "",
    checkpoint_before: dict | None = None,
    run_id: uuid.UUID | None = None,
) -> Run:
    now = timezone.now()
    with transaction.atomic():
        run = Run.objects.create(
            id=run_id or uuid.uuid4(),
            source=source,
            trigger=trigger,
            parent_id=parent_id,
            task_id=task_id or "",
            host=_host(),
            started_at=now,
            heartbeat_at=now,
            checkpoint_before=checkpoint_before,
            checkpoint_after=checkpoint_before,
        )
        rollups.started(run)
        data_version_advance()
    return run


def run_page_committed(*, run_id: uuid.UUID, cursor: dict | None, **counts: int) -> None:
    """Add a page's counts; call inside the page's transaction so they commit with it."""
    unknown = set(counts) - set(RUN_COUNTERS)
    if unknown:
        raise ValueError(f"unknown run counters: {sorted(unknown)}")
    updates = {name: F(name) + value for name, value in counts.items() if value}
    if cursor is not None:
        updates["checkpoint_after"] = cursor
    Run.objects.filter(pk=run_id).update(
        pages=F("pages") + 1, heartbeat_at=timezone.now(), **updates
    )


def run_finish(
    *,
    run_id: uuid.UUID,
    status: str,
    error: BaseException | None = None,
    message: str = "",
    retryable: bool = False,
) -> Run:
    """Record the end of a run. `retryable`: the caller's classification of `error` (runs
    does not know the ETL's error types); the ingest task retries only such runs."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        before = copy.copy(run)
        run.status = status
        run.finished_at = timezone.now()
        run.retryable = retryable
        if error is not None:
            run.error_class = f"{type(error).__module__}.{type(error).__qualname__}"[:200]
            run.error_message = (message or str(error) or type(error).__name__)[:10_000]
        elif message:
            run.error_message = message[:10_000]
        run.save(
            update_fields=["status", "finished_at", "retryable", "error_class", "error_message"]
        )
        rollups.finished(run, before=before)
        data_version_advance()
    return run


def runs_fail_running(
    *, source: str, error_class: str, message: str, except_run: uuid.UUID | None = None
) -> uuid.UUID | None:
    """Fail the source's running runs (their process died: the caller proved it by holding
    the source's claim). Returns the newest of them, if any."""
    newest = None
    with transaction.atomic():
        running = Run.objects.select_for_update().filter(source=source, status=Run.Status.RUNNING)
        if except_run is not None:
            running = running.exclude(pk=except_run)
        now = timezone.now()
        for run in running.order_by("started_at"):
            before = copy.copy(run)
            run.status = Run.Status.FAILED
            run.finished_at = now
            run.error_class = error_class[:200]
            run.error_message = message[:10_000]
            run.save(update_fields=["status", "finished_at", "error_class", "error_message"])
            rollups.finished(run, before=before)
            newest = run.pk
        if newest is not None:
            data_version_advance()
    return newest


def run_skip(
    *,
    source: str,
    trigger: str,
    reason: str,
    task_id: str = "",
    parent_id: uuid.UUID | str | None = None,
) -> Run:
    now = timezone.now()
    with transaction.atomic():
        run = Run.objects.create(
            source=source,
            trigger=trigger,
            parent_id=parent_id,
            task_id=task_id or "",
            host=_host(),
            status=Run.Status.SKIPPED,
            started_at=now,
            finished_at=now,
            error_message=reason,
        )
        rollups.recorded(run)
        data_version_advance()
    return run


# --- Operator requests --------------------------------------------------------------------------

RETRYABLE = (Run.Status.FAILED, Run.Status.PARTIAL)


def run_enqueue(*, source: str, trigger: str, parent_run_id: str | None = None) -> None:
    """Queue a run of `source` (the `etl.ingest` task) once the caller's transaction commits.
    The one way to ask for a run on the workers: operators' actions here, `etl enqueue` and the
    reaper in `etl`.

    A signature by name resolves to the registered task when this process knows it (so its
    routing and options apply, and eager mode runs it in place) and falls back to sending the
    name to the broker otherwise; `send_task` alone would ignore eager mode.
    """
    from celery import current_app as app

    kwargs = {"trigger": trigger, "parent_run_id": parent_run_id}
    signature = app.signature(INGEST_TASK, args=[source], kwargs=kwargs)
    transaction.on_commit(signature.apply_async)


def run_retry(*, run_id: uuid.UUID | str) -> Run:
    """Queue a new run of a failed or partial run's source, linked to it. The new run resumes
    from the source's checkpoint: the pages that committed are not fetched again."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        raise NotFoundError(f"run {run_id} does not exist")
    if run.status not in RETRYABLE:
        raise ApplicationError(
            f"run {str(run.id)[:8]} of {run.source} is {run.status}: "
            "only failed or partial runs can be retried"
        )
    run_enqueue(source=run.source, trigger=Run.Trigger.RETRY, parent_run_id=str(run.id))
    return run


def source_run_now(*, source: str) -> None:
    """Queue a manual run of a source; it resumes from the source's checkpoint."""
    if not source:
        raise ApplicationError("a source name is required")
    run_enqueue(source=source, trigger=Run.Trigger.MANUAL)
