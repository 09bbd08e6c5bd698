"""Raw pages as fetched, kept once per distinct content for replay and audit."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from django.utils import timezone

from etl.models import RawRecord


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
