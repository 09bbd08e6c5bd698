"""Replays: items go through the stages again with what the system knows today (accepted drift
mappings, assets later runs created, mentions), without calling upstream. Upserts make them
idempotent: items already loaded come out unchanged, a second replay changes nothing.

- `runs_replay` / `drift_replay`: the raw pages of past runs (kept as RawRecord), after an
  operator accepted a drift mapping; recorded as a run (trigger `replay`).
- `quarantine_replay`: exactly the selected quarantined items, from their stored copies; those
  that now load are marked `replayed`, the others keep today's reason.

Both hold the source's claim: an ingestion of the same source would upsert the same rows.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from etl.models import DriftEvent, QuarantinedRecord, RawRecord
from etl.pipeline.load import loader_class
from etl.pipeline.page import PageContext, process_page
from etl.pipeline.transform import transform_items
from etl.services.drift import drift_context_load
from etl.services.leases import SourceBusy, SourceClaim, source_claimed
from etl.services.raw_records import content_hash
from etl.sources import build_source
from kasparro.core.errors import ApplicationError
from kasparro.core.logging import log_context
from runs.models import Run
from runs.services import run_finish, run_skip, run_start

logger = logging.getLogger(__name__)

Status = QuarantinedRecord.Status


def runs_replay(*, source_name: str, run_ids: list, parent_id=None) -> Run:
    """Replay every raw page the given runs fetched or quarantined items from."""
    source = build_source(source_name)
    name = source.name
    raw_ids = set(
        RawRecord.objects.filter(source=name, run_id__in=run_ids).values_list("id", flat=True)
    )
    raw_ids |= set(
        QuarantinedRecord.objects.filter(
            source=name, run_id__in=run_ids, raw_record__isnull=False
        ).values_list("raw_record_id", flat=True)
    )
    with contextlib.ExitStack() as held:
        try:
            claim = held.enter_context(source_claimed(source=name))
        except SourceBusy:
            run_skip(
                source=name,
                trigger=Run.Trigger.REPLAY,
                parent_id=parent_id,
                reason=f"{name} is being ingested right now; replay again in a moment",
            )
            raise ApplicationError(
                f"{name} is being ingested right now; try the replay again later."
            ) from None
        return _replay_pages(source, claim, run_ids, raw_ids, parent_id)


def _replay_pages(source, claim: SourceClaim, run_ids: list, raw_ids: set, parent_id) -> Run:
    name = source.name
    # Started only once the claim is held: the reaper takes a running run without it as dead.
    run = run_start(
        run_id=claim.holder, source=name, trigger=Run.Trigger.REPLAY, parent_id=parent_id
    )
    still_bad: set[str] = set()
    try:
        drift = drift_context_load(source=name)
        loader = loader_class(source)
        ctx = PageContext(name, loader(source=name), run.id, claim)
        with log_context(run_id=str(run.id), source=name):
            for raw in (
                RawRecord.objects.filter(pk__in=raw_ids)
                .select_related("body")
                .order_by("pk")
                .iterator()
            ):
                items = source.items_from_raw(raw.payload, raw.body_text)
                prepared = transform_items(source, loader, items, drift)
                prepared.triage = None  # drift was recorded when the page was first fetched
                prepared.raw_record_id = raw.pk
                with transaction.atomic():
                    outcome = process_page(ctx, prepared)
                still_bad.update(content_hash(item) for item, _, _ in outcome.bad)
        replayed = (
            QuarantinedRecord.objects.filter(source=name, run_id__in=run_ids, status=Status.OPEN)
            .exclude(item_hash__in=still_bad)
            .update(status=Status.REPLAYED)
        )
        status = Run.Status.PARTIAL if still_bad else Run.Status.SUCCESS
        note = f"replayed {len(raw_ids)} page(s); {replayed} quarantined item(s) now landed"
        if still_bad:
            note += f"; {len(still_bad)} still quarantined"
        return run_finish(run_id=run.id, status=status, message=note)
    except Exception as exc:
        logger.exception("replay failed", extra={"run_id": str(run.id), "source": name})
        return run_finish(run_id=run.id, status=Run.Status.FAILED, error=exc)


def drift_replay(*, event_id: int) -> Run:
    """Replay the runs that met a drift event; link the replay to the event."""
    event = DriftEvent.objects.get(pk=event_id)
    runs = list(event.runs.order_by("started_at").values_list("id", flat=True))
    if not runs:
        raise ApplicationError("This drift event has no runs to replay.")
    run = runs_replay(source_name=event.source, run_ids=runs, parent_id=runs[-1])
    DriftEvent.objects.filter(pk=event.pk).update(replay_run=run, resolved_at=timezone.now())
    return run


def quarantine_replay(*, ids: Iterable[int]) -> dict[str, int]:
    """Run the selected items through drift triage, normalize, identity and load again.

    Returns counts: `replayed` (now loaded), `still_quarantined`, `skipped` (already replayed),
    `busy` (their source was being ingested: try again later), and the load's `inserted`,
    `updated` and `unchanged`.
    """
    ids = list(ids)
    counts = dict.fromkeys(
        ("replayed", "still_quarantined", "skipped", "busy", "inserted", "updated", "unchanged"),
        0,
    )
    records = list(
        QuarantinedRecord.objects.filter(pk__in=ids).exclude(status=Status.REPLAYED).order_by("pk")
    )
    counts["skipped"] = len(ids) - len(records)
    by_source: dict[str, list[QuarantinedRecord]] = defaultdict(list)
    for record in records:
        by_source[record.source].append(record)
    for name, group in by_source.items():
        try:
            with source_claimed(source=name):
                _replay_records(name, group, counts)
        except SourceBusy:
            counts["busy"] += len(group)
    return counts


def _replay_records(name: str, records: list[QuarantinedRecord], counts: dict[str, int]) -> None:
    source = build_source(name)
    loader = loader_class(source)
    items = [record.item for record in records]
    prepared = transform_items(source, loader, items, drift_context_load(source=name))
    prepared.triage = None  # nothing recorded: these items are not a page of a run
    with transaction.atomic():
        outcome = process_page(PageContext(name, loader(source=name)), prepared)
        # Bad entries carry the very item objects passed in: match them by identity.
        reasons = {id(item): (code, reason) for item, code, reason in outcome.bad}
        landed, still_bad = [], []
        for record, item in zip(records, items, strict=True):
            if id(item) in reasons:
                code, record.reason = reasons[id(item)]
                record.reason_code = code[:50]
                record.last_seen_at = timezone.now()
                still_bad.append(record)
            else:
                landed.append(record.pk)
        QuarantinedRecord.objects.filter(pk__in=landed).update(status=Status.REPLAYED)
        QuarantinedRecord.objects.bulk_update(still_bad, ["reason_code", "reason", "last_seen_at"])
    counts["replayed"] += len(landed)
    counts["still_quarantined"] += len(still_bad)
    counts["inserted"] += outcome.result.inserted
    counts["updated"] += outcome.result.updated
    counts["unchanged"] += outcome.result.unchanged
