"""Quarantine: items that could not be loaded, kept with a reason until an operator replays
(etl.pipeline.replay) or discards them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db.models import F
from django.utils import timezone

from etl.models import QuarantinedRecord
from etl.services.raw_records import content_hash

Status = QuarantinedRecord.Status


def quarantine_add(
    *,
    source: str,
    run_id: uuid.UUID,
    raw_record_id: int | None,
    entries: list[tuple[Any, str, str]],
) -> int:
    """Quarantine (payload, reason_code, reason) entries; the same item again bumps its count."""
    if not entries:
        return 0
    now = timezone.now()
    rows: dict[str, QuarantinedRecord] = {}
    for item, code, reason in entries:
        digest = content_hash(item)
        rows[digest] = QuarantinedRecord(
            source=source,
            run_id=run_id,
            raw_record_id=raw_record_id,
            item_hash=digest,
            payload=QuarantinedRecord.wrap(item),
            reason_code=code[:50],
            reason=reason,
            created_at=now,
            last_seen_at=now,
        )
    seen = set(
        QuarantinedRecord.objects.filter(source=source, item_hash__in=list(rows)).values_list(
            "item_hash", flat=True
        )
    )
    QuarantinedRecord.objects.bulk_create([r for h, r in rows.items() if h not in seen])
    if seen:
        QuarantinedRecord.objects.filter(source=source, item_hash__in=seen).update(
            occurrences=F("occurrences") + 1, last_seen_at=now
        )
    return len(entries)


def quarantine_discard(*, ids: Iterable[int]) -> int:
    """Mark open items as discarded (kept for the record, never replayed by accident)."""
    return QuarantinedRecord.objects.filter(pk__in=list(ids), status=Status.OPEN).update(
        status=Status.DISCARDED
    )
