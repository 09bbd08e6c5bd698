"""Raw pages as fetched, kept once per distinct content for replay and audit.

A page is one RawRecord per (source, content hash of its payload and body). Its bulk text (CSV
lines) is a RawBody, kept once per distinct text whatever the page: the same file dropped again
under another name adds a small RawRecord (its own file name and rows, for replay) and shares
the body. Pruning is in `etl.services.retention`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
import zlib
from typing import Any

from django.utils import timezone

from etl.models import RawBody, RawRecord


def _canonical(payload: Any) -> bytes:
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def content_hash(payload: Any, body: str | None = None) -> str:
    """SHA-256 of the canonical JSON of a payload (and of its bulk text, if any)."""
    digest = hashlib.sha256(_canonical(payload))
    if body is not None:
        digest.update(b"\0")
        digest.update(body.encode())
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class RawPage:
    """What the page transaction stores of a fetched page, computed ahead (no database)."""

    digest: str  # content_hash(payload, body)
    payload_size: int
    body: bytes | None = None  # zlib-compressed
    body_digest: str = ""  # SHA-256 of the body's text


def raw_page_prepare(payload: Any, body: str | None) -> RawPage:
    """Hash and compress a fetched page (pure work, done in the read-ahead thread)."""
    if body is None:
        return RawPage(content_hash(payload), len(_canonical(payload)))
    text = body.encode()
    return RawPage(
        content_hash(payload, body),
        len(_canonical(payload)),
        zlib.compress(text, 1),
        hashlib.sha256(text).hexdigest(),
    )


def raw_record_store(
    *,
    source: str,
    payload: Any,
    raw: RawPage,
    item_count: int,
    page_ref: str,
    run_id: uuid.UUID,
) -> RawRecord:
    """Keep a page once per distinct content and its body once per distinct text; return the
    stored row. A page seen again is marked seen now, so that retention keeps it.

    Both rows are locked for the rest of the page transaction: the prune skips locked rows,
    and a row it deleted meanwhile is not found here and is stored again (PostgreSQL; SQLite
    runs one writer at a time)."""
    now = timezone.now()
    existing = (
        RawRecord.objects.select_for_update()
        .filter(source=source, content_hash=raw.digest)
        .only("pk", "last_seen_at")
        .first()
    )
    if existing is not None:
        RawRecord.objects.filter(pk=existing.pk).update(last_seen_at=now)
        return existing
    body = None
    if raw.body is not None:
        body = RawBody.objects.select_for_update().filter(digest=raw.body_digest).first()
        if body is None:
            body, _ = RawBody.objects.get_or_create(
                digest=raw.body_digest, defaults={"data": raw.body, "size": len(raw.body)}
            )
    return RawRecord.objects.create(
        source=source,
        content_hash=raw.digest,
        payload=payload,
        body=body,
        payload_size=raw.payload_size,
        item_count=item_count,
        page_ref=page_ref[:500],
        run_id=run_id,
        fetched_at=now,
        last_seen_at=now,
    )
