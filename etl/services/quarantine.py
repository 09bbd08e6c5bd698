"""Operator actions on quarantined items: discard them, or replay them from their stored items.

Replay re-processes exactly the selected items (not the raw pages they came from) with what the
system knows today: accepted drift mappings, assets that later runs created, mentions. Items
that now load are upserted and marked `replayed`; the others stay quarantined with today's
reason. Upserts make it idempotent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from etl.models import QuarantinedRecord
from etl.services.claim import SourceBusy, source_claimed
from etl.services.drift import drift_context_load
from etl.services.identity import IdentityResolver
from etl.services.ingest import load_good, prepare_items
from etl.services.mentions import MentionMatcher
from etl.sources import build_source

Status = QuarantinedRecord.Status


def quarantine_discard(*, ids: Iterable[int]) -> int:
    """Mark open items as discarded (kept for the record, never replayed by accident)."""
    return QuarantinedRecord.objects.filter(pk__in=list(ids), status=Status.OPEN).update(
        status=Status.DISCARDED
    )


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
        # Ingestion of the same source would upsert the same rows concurrently: wait for it.
        try:
            with source_claimed(source=name):
                _replay_group(name, group, counts)
        except SourceBusy:
            counts["busy"] += len(group)
    return counts


def _replay_group(name: str, records: list[QuarantinedRecord], counts: dict[str, int]) -> None:
    source = build_source(name)
    items = [record.item for record in records]
    good, bad, _ = prepare_items(source, items, drift_context_load(source=name))
    resolver = IdentityResolver(source=name) if source.kind == "market" else None
    matcher = MentionMatcher.from_database() if source.kind == "news" else None
    with transaction.atomic():
        result = load_good(source, good, [], bad, resolver, matcher)
        # Bad entries carry the very item objects passed in: match them by identity.
        reasons = {id(item): (code, reason) for item, code, reason in bad}
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
    counts["inserted"] += result.inserted
    counts["updated"] += result.updated
    counts["unchanged"] += result.unchanged
