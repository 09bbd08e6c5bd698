"""Replay: re-process the raw pages of past runs from RawRecord, without calling upstream.

Used after an operator accepts a drift mapping: the items drift held back (and everything else
on those pages) go through normalize and load again with today's mappings. Upserts make it
idempotent: items already loaded come out unchanged, a second replay changes nothing.
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction
from django.utils import timezone

from etl.models import DriftEvent, QuarantinedRecord, RawRecord
from etl.services.claim import SourceClaim
from etl.services.drift import drift_context_load
from etl.services.identity import IdentityResolver
from etl.services.ingest import load_good, prepare_items
from etl.services.mentions import MentionMatcher
from etl.services.state import content_hash, quarantine_add
from etl.sources import build_source
from kasparro.core.errors import ApplicationError
from kasparro.core.logging import log_context
from runs.models import Run
from runs.services import run_finish, run_page_committed, run_skip, run_start

logger = logging.getLogger(__name__)


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
    claim = SourceClaim(source=name, holder=uuid.uuid4())
    if not claim.acquire():
        run_skip(
            source=name,
            trigger=Run.Trigger.REPLAY,
            parent_id=parent_id,
            reason=f"{name} is being ingested right now; replay again in a moment",
        )
        raise ApplicationError(f"{name} is being ingested right now; try the replay again later.")
    # Started only once the claim is held: the reaper takes a running run without it as dead.
    try:
        run = run_start(
            run_id=claim.holder, source=name, trigger=Run.Trigger.REPLAY, parent_id=parent_id
        )
    except BaseException:
        claim.release()
        raise
    still_bad: set[str] = set()
    try:
        drift = drift_context_load(source=name)
        resolver = IdentityResolver(source=name) if source.kind == "market" else None
        matcher = MentionMatcher.from_database() if source.kind == "news" else None
        with log_context(run_id=str(run.id), source=name):
            for raw in RawRecord.objects.filter(pk__in=raw_ids).order_by("pk").iterator():
                items = source.items_from_raw(raw.payload, raw.body_text)
                good, bad, _ = prepare_items(source, items, drift)
                with transaction.atomic():
                    result = load_good(source, good, [], bad, resolver, matcher)
                    quarantine_add(source=name, run_id=run.id, raw_record_id=raw.pk, entries=bad)
                    run_page_committed(
                        run_id=run.id,
                        cursor=None,
                        items_fetched=len(items),
                        items_inserted=result.inserted,
                        items_updated=result.updated,
                        items_unchanged=result.unchanged,
                        items_quarantined=len(bad),
                    )
                    claim.prove()
                still_bad.update(content_hash(item) for item, _, _ in bad)
        replayed = (
            QuarantinedRecord.objects.filter(
                source=name, run_id__in=run_ids, status=QuarantinedRecord.Status.OPEN
            )
            .exclude(item_hash__in=still_bad)
            .update(status=QuarantinedRecord.Status.REPLAYED)
        )
        status = Run.Status.PARTIAL if still_bad else Run.Status.SUCCESS
        note = f"replayed {len(raw_ids)} page(s); {replayed} quarantined item(s) now landed"
        if still_bad:
            note += f"; {len(still_bad)} still quarantined"
        return run_finish(run_id=run.id, status=status, message=note)
    except Exception as exc:
        logger.exception("replay failed", extra={"run_id": str(run.id), "source": name})
        return run_finish(run_id=run.id, status=Run.Status.FAILED, error=exc)
    finally:
        claim.release()


def drift_replay(*, event_id: int) -> Run:
    """Replay the runs that met a drift event; link the replay to the event."""
    event = DriftEvent.objects.get(pk=event_id)
    runs = list(event.runs.order_by("started_at").values_list("id", flat=True))
    if not runs:
        raise ApplicationError("This drift event has no runs to replay.")
    run = runs_replay(source_name=event.source, run_ids=runs, parent_id=runs[-1])
    DriftEvent.objects.filter(pk=event.pk).update(replay_run=run, resolved_at=timezone.now())
    return run
