"""One run of one source: its lifecycle around the stages.

    claim (heartbeat-kept, etl/services/leases.py) ─► dead runs of the source failed ─►
    Run(running) ─► extract ─► transform ─► (read ahead a page) ─► process_page per page
    ─► Run(success | partial | failed), claim released

A failure rolls back the page in flight and nothing else: the checkpoint keeps the last
committed cursor and the run is recorded as failed with the counts of the pages that did
commit. Every part answered: success; some did (or items were quarantined): partial; none
did: failed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from collections.abc import Callable

from django.conf import settings

from etl.exceptions import SourcePaused, is_retryable
from etl.faults import FaultPlan
from etl.pipeline.extract import extract, read_ahead
from etl.pipeline.load import RunSeen, loader_class
from etl.pipeline.page import PageContext, PageWriter
from etl.pipeline.transform import transform
from etl.services.checkpoints import checkpoint_get
from etl.services.database import database_retrying
from etl.services.drift import DriftContext, drift_context_load, source_pause, source_policy_get
from etl.services.leases import SourceBusy, SourceClaim, source_claimed
from etl.services.reaper import runs_fail_abandoned
from etl.services.upstream import upstream_counts_add
from etl.sources import build_source
from etl.sources.base import Source
from kasparro.core.logging import log_context
from runs.anomaly import run_score_store
from runs.models import Run
from runs.services import run_finish, run_skip, run_start

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[dict], None]


def ingest_run(
    *,
    source_name: str,
    trigger: str,
    parent_run_id: uuid.UUID | str | None = None,
    task_id: str = "",
    faults: FaultPlan | None = None,
    progress: ProgressCallback | None = None,
) -> Run:
    """Run one source to completion (or failure) and return its finished Run."""
    source = build_source(source_name)
    name = source.name
    plan = faults if faults is not None else FaultPlan.parse(settings.ETL_FAULTS)
    run_id = uuid.uuid4()
    skip = functools.partial(
        run_skip, source=name, trigger=trigger, task_id=task_id, parent_id=parent_run_id
    )

    policy = source_policy_get(source=name)
    if policy.paused:
        return skip(reason=f"source paused: {policy.paused_reason or 'by an operator'}")
    with contextlib.ExitStack() as held:
        try:
            claim = held.enter_context(source_claimed(source=name, holder=run_id, task_id=task_id))
        except SourceBusy as busy:
            holder = str(busy.holder)
            logger.info("source busy, run skipped", extra={"source": name, "holder": holder})
            return skip(reason=f"another run of {name} is in progress (run {holder})")
        return _run(source, claim, trigger, parent_run_id, task_id, plan, progress)


def _run(
    source: Source,
    claim: SourceClaim,
    trigger: str,
    parent_run_id: uuid.UUID | str | None,
    task_id: str,
    plan: FaultPlan,
    progress: ProgressCallback | None,
) -> Run:
    """The run, holding the source's claim."""
    name, run_id = source.name, claim.holder
    run = None
    try:
        # Holding the claim proves any other running run of the source dead: this run is
        # their recovery, and links to the newest of them when nothing else asked for it.
        dead = runs_fail_abandoned(source=name, except_run=run_id)
        drift = drift_context_load(source=name)
        seen = RunSeen()
        cursor = checkpoint_get(source=name)
        run = run_start(
            run_id=run_id,
            source=name,
            trigger=trigger,
            parent_id=parent_run_id or dead,
            task_id=task_id,
            checkpoint_before=cursor,
        )
        logger.info(
            "run started", extra={"run_id": str(run_id), "source": name, "trigger": trigger}
        )
        ctx = PageContext(name, loader_class(source)(source=name, seen=seen), run_id, claim, plan)
        with log_context(run_id=str(run_id), source=name):
            status, message = _pages(source, ctx, cursor, drift, progress)
        seen.store(run_id)
        run = run_finish(run_id=run_id, status=status, message=message)
        _score(run_id)
        logger.info("run finished", extra={"run_id": str(run_id), "source": name, "status": status})
        return run
    except BaseException as exc:
        logger.exception("run failed", extra={"run_id": str(run_id), "source": name})
        if run is None:
            raise
        try:
            run = database_retrying(
                functools.partial(
                    run_finish,
                    run_id=run_id,
                    status=Run.Status.FAILED,
                    error=exc,
                    retryable=is_retryable(exc),
                )
            )
        except Exception:
            logger.exception("could not record the failure", extra={"run_id": str(run_id)})
            raise exc from None
        _score(run_id)
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt, SystemExit: recorded as failed, then honoured
        return run
    finally:
        client = getattr(source, "client", None)
        if client is not None and client.stats:
            try:
                upstream_counts_add(source=name, stats=dict(client.stats))
            except Exception:
                logger.exception("could not record upstream counters", extra={"source": name})


def _score(run_id: uuid.UUID) -> None:
    """Anomaly findings against the source's history; never fails the run."""
    try:
        run_score_store(run_id=run_id)
    except Exception:
        logger.exception("could not score the run", extra={"run_id": str(run_id)})


def _pages(
    source: Source,
    ctx: PageContext,
    cursor: dict,
    drift: DriftContext | None,
    progress: ProgressCallback | None,
) -> tuple[str, str]:
    """Every page through the stages; returns the run's status and message."""
    writer = PageWriter(ctx)
    part_errors: list[str] = []
    answered = quarantined = 0
    prepared_pages = transform(
        extract(source, cursor, ctx.plan), source, type(ctx.loader), ctx.plan, drift
    )
    for prepared in read_ahead(prepared_pages, settings.ETL_READ_AHEAD_PAGES):
        page = prepared.page
        if page.error:
            part_errors.append(page.error)
            logger.warning(
                "part of the source failed",
                extra={"run_id": str(ctx.run_id), "source": ctx.source, "error": page.error},
            )
        else:
            answered += 1  # a page, or a feed or file that answered (304 included)
        if not page.error and not page.not_modified and (page.items or page.cursor != cursor):
            outcome = writer.commit(prepared)
            cursor = page.cursor
            quarantined += len(outcome.bad)
            if prepared.triage and prepared.triage.pause_reason:
                source_pause(source=ctx.source, reason=prepared.triage.pause_reason)
                raise SourcePaused(prepared.triage.pause_reason)
            logger.info(
                "page committed",
                extra={
                    "run_id": str(ctx.run_id),
                    "source": ctx.source,
                    "page": page.ref,
                    "inserted": outcome.result.inserted,
                    "updated": outcome.result.updated,
                    "unchanged": outcome.result.unchanged,
                    "quarantined": len(outcome.bad),
                },
            )
        if progress:
            progress(
                {
                    "page": page.ref,
                    "items": len(page.items),
                    "error": page.error,
                    "not_modified": page.not_modified,
                }
            )

    if part_errors and not answered:
        return Run.Status.FAILED, "; ".join(part_errors)
    if part_errors or quarantined:
        notes = list(part_errors)
        if quarantined:
            notes.append(f"{quarantined} item(s) quarantined")
        return Run.Status.PARTIAL, "; ".join(notes)
    return Run.Status.SUCCESS, ""
