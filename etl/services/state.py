"""Checkpoints, raw records, quarantine and upstream counters: the bookkeeping of a page."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from etl.models import Checkpoint, QuarantinedRecord, RawRecord, UpstreamCounter


def content_hash(payload: Any, body: str | None = None) -> str:
    """SHA-256 of the canonical JSON of a payload (and of its bulk text, if any)."""
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    digest = hashlib.sha256(text.encode())
    if body is not None:
        digest.update(b"\0")
        digest.update(body.encode())
    return digest.hexdigest()


# --- Checkpoints --------------------------------------------------------------------------------


def checkpoint_get(*, source: str) -> dict:
    cursor = Checkpoint.objects.filter(source=source).values_list("cursor", flat=True).first()
    return cursor or {}


def checkpoint_advance(*, source: str, cursor: dict, run_id: uuid.UUID | None) -> None:
    """Store the cursor after a page. Call inside the page's transaction."""
    updated = Checkpoint.objects.filter(source=source).update(
        cursor=cursor, run_id=run_id, updated_at=timezone.now()
    )
    if not updated:
        Checkpoint.objects.create(source=source, cursor=cursor, run_id=run_id)


def checkpoint_set(*, source: str, cursor: dict) -> None:
    """Operator action: rewind or reset (an empty cursor starts from scratch)."""
    checkpoint_advance(source=source, cursor=cursor, run_id=None)


# --- Raw records and quarantine -----------------------------------------------------------------


def raw_record_store(
    *,
    source: str,
    payload: Any,
    digest: str,
    body: bytes | None,
    item_count: int,
    page_ref: str,
    run_id: uuid.UUID,
) -> RawRecord:
    """Keep a page once per distinct content (`digest` from `content_hash`, `body` already
    compressed); return the stored row."""
    existing = RawRecord.objects.filter(source=source, content_hash=digest).first()
    if existing is not None:
        return existing
    return RawRecord.objects.create(
        source=source,
        content_hash=digest,
        payload=payload,
        body=body,
        item_count=item_count,
        page_ref=page_ref[:500],
        run_id=run_id,
        fetched_at=timezone.now(),
    )


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


# --- Upstream request counters ------------------------------------------------------------------


def upstream_counts_add(*, source: str, stats: dict[str, int]) -> None:
    """Add a run's upstream responses by status to the totals /metrics reports."""
    for status, count in stats.items():
        if not count:
            continue
        updated = UpstreamCounter.objects.filter(source=source, status=status).update(
            count=F("count") + count
        )
        if not updated:
            try:
                with transaction.atomic():
                    UpstreamCounter.objects.create(source=source, status=status, count=count)
            except IntegrityError:  # created meanwhile by another worker
                UpstreamCounter.objects.filter(source=source, status=status).update(
                    count=F("count") + count
                )
