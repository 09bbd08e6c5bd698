"""The page transaction: everything one page writes, committed together or not at all.

`process_page` is the one path by which items reach the database — ingestion, drift replay and
quarantine replay all go through it. In the caller's transaction, in this order:

    raw page kept (once per content) · drift findings recorded · good items loaded (identity
    failures join the bad) · bad items quarantined · checkpoint advanced · run counters
    advanced · claim proved (fencing: the page commits only while the claim is ours) · data
    version advanced

Each step happens when the page carries what it needs (a fetched page has a raw payload and a
cursor; a replayed one has neither). `PageWriter` runs it in a transaction of its own and, when
the database was lost on the way, again on a new connection (`database_retrying`).
"""

from __future__ import annotations

import dataclasses
import uuid

from django.db import (
    close_old_connections,
    connection,
    transaction,
)

from crypto.versions import data_version_advance
from etl.exceptions import LeaseLostError
from etl.faults import FaultPlan
from etl.pipeline.load import Loader, LoadResult
from etl.pipeline.load.base import Bad
from etl.pipeline.transform import PreparedPage
from etl.services.checkpoints import checkpoint_advance
from etl.services.database import database_retrying
from etl.services.drift import drift_record
from etl.services.leases import SourceClaim
from etl.services.quarantine import quarantine_add
from etl.services.raw_records import raw_record_store
from runs.services import run_page_committed


@dataclasses.dataclass
class PageContext:
    """What the pages of one run (or one replay) share."""

    source: str
    loader: Loader
    run_id: uuid.UUID | None = None  # None: no run to count on, nothing quarantined anew
    claim: SourceClaim | None = None
    plan: FaultPlan = dataclasses.field(default_factory=lambda: FaultPlan([]))


@dataclasses.dataclass
class PageOutcome:
    result: LoadResult
    bad: Bad  # the page's bad items, identity failures included
    drift_findings: int = 0


def process_page(ctx: PageContext, prepared: PreparedPage) -> PageOutcome:
    """Write one prepared page in the caller's transaction; the claim proved last."""
    name, run_id, page = ctx.source, ctx.run_id, prepared.page
    raw_id = prepared.raw_record_id
    if page is not None and prepared.raw is not None and run_id is not None:
        raw_id = raw_record_store(
            source=name,
            payload=page.payload,
            raw=prepared.raw,
            item_count=len(page.items),
            page_ref=page.ref,
            run_id=run_id,
        ).pk
    drift_findings = 0
    if prepared.triage is not None and run_id is not None:
        drift_findings = drift_record(
            source=name, run_id=run_id, triage=prepared.triage, items=prepared.items
        )
    ctx.plan.check(name, "load", prepared.number)
    bad = list(prepared.bad)
    result = ctx.loader.load(prepared.good, prepared.extras, bad)
    if run_id is not None:
        quarantine_add(source=name, run_id=run_id, raw_record_id=raw_id, entries=bad)
    ctx.plan.check(name, "checkpoint", prepared.number)
    if page is not None:
        checkpoint_advance(source=name, cursor=page.cursor, run_id=run_id)
    if run_id is not None:
        run_page_committed(
            run_id=run_id,
            cursor=page.cursor if page is not None else None,
            items_fetched=len(prepared.items),
            items_inserted=result.inserted,
            items_updated=result.updated,
            items_unchanged=result.unchanged,
            items_quarantined=len(bad),
            drift_findings=drift_findings,
        )
    if ctx.claim is not None:
        ctx.claim.prove()
    # Last: its one row is locked until the commit, and every transaction takes it last.
    data_version_advance()
    return PageOutcome(result, bad, drift_findings)


class PageWriter:
    """Commits prepared pages, each in a transaction of its own, retried on a new connection
    when the database was lost (the rollback left the checkpoint where it was); the loader's
    caches are dropped whenever a transaction rolls back."""

    def __init__(self, ctx: PageContext) -> None:
        self.ctx = ctx

    def commit(self, prepared: PreparedPage) -> PageOutcome:
        claim = self.ctx.claim
        if claim is not None and claim.lost:
            raise LeaseLostError(f"lost the claim on {self.ctx.source}: another run took over")
        if not connection.in_atomic_block:
            close_old_connections()  # a connection a database restart killed is replaced here

        def write() -> PageOutcome:
            with transaction.atomic():
                return process_page(self.ctx, prepared)

        return database_retrying(write, on_retry=self.ctx.loader.reset)
