"""Checkpoints: where each source resumes. Runs advance them page by page; operators reset
them (start from scratch) or rewind them.

A run in progress writes the checkpoint with every page it commits, so it would silently undo
the change: the change is made holding the source's claim, and refused while a run holds it.
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from crypto.versions import data_version_advance
from etl.models import Checkpoint
from etl.services.leases import SourceBusy, source_claim_holder, source_claimed
from kasparro.core.errors import ApplicationError


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
    """Operator action: rewind or reset (an empty cursor starts from scratch). What the next
    run reads changes, and with it what the runs API shows: the data version advances."""
    with transaction.atomic():
        checkpoint_advance(source=source, cursor=cursor, run_id=None)
        data_version_advance()


def _busy(source: str) -> ApplicationError:
    return ApplicationError(
        f"a run of {source} is in progress and would overwrite the checkpoint: "
        "try again when it has finished"
    )


def checkpoint_check_writable(*, source: str) -> None:
    """Raise ApplicationError while a run holds the source (early feedback for forms)."""
    if source_claim_holder(source=source) is not None:
        raise _busy(source)


def checkpoint_rewind(*, source: str, cursor: dict) -> dict:
    """Set the cursor the next run resumes from; return the cursor it replaces."""
    if not isinstance(cursor, dict):
        raise ApplicationError("a cursor is a JSON object ({} starts from scratch)")
    # Holding the claim, no run can start (and read the old cursor) while we write.
    try:
        with source_claimed(source=source):
            before = checkpoint_get(source=source)
            checkpoint_set(source=source, cursor=cursor)
    except SourceBusy:
        raise _busy(source) from None
    return before


def checkpoint_reset(*, source: str) -> dict:
    """Forget where the source was: its next run starts from the beginning."""
    return checkpoint_rewind(source=source, cursor={})
