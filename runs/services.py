"""Writes to Run rows: start, count a committed page, finish, skip."""

from __future__ import annotations

import os
import socket
import uuid

from django.db.models import F
from django.utils import timezone

from runs.models import Run

COUNTERS = (
    "items_fetched",
    "items_inserted",
    "items_updated",
    "items_unchanged",
    "items_quarantined",
    "drift_findings",
)


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
    return Run.objects.create(
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


def run_page_committed(*, run_id: uuid.UUID, cursor: dict | None, **counts: int) -> None:
    """Add a page's counts; call inside the page's transaction so they commit with it."""
    unknown = set(counts) - set(COUNTERS)
    if unknown:
        raise ValueError(f"unknown run counters: {sorted(unknown)}")
    updates = {name: F(name) + value for name, value in counts.items() if value}
    if cursor is not None:
        updates["checkpoint_after"] = cursor
    Run.objects.filter(pk=run_id).update(
        pages=F("pages") + 1, heartbeat_at=timezone.now(), **updates
    )


def run_finish(
    *, run_id: uuid.UUID, status: str, error: BaseException | None = None, message: str = ""
) -> Run:
    run = Run.objects.get(pk=run_id)
    run.status = status
    run.finished_at = timezone.now()
    if error is not None:
        run.error_class = f"{type(error).__module__}.{type(error).__qualname__}"[:200]
        run.error_message = (message or str(error) or type(error).__name__)[:10_000]
    elif message:
        run.error_message = message[:10_000]
    run.save(update_fields=["status", "finished_at", "error_class", "error_message"])
    return run


def run_skip(
    *,
    source: str,
    trigger: str,
    reason: str,
    task_id: str = "",
    parent_id: uuid.UUID | str | None = None,
) -> Run:
    now = timezone.now()
    return Run.objects.create(
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
