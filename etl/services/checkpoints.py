"""Operator changes to a source's checkpoint: reset it (start from scratch) or rewind it.

A run in progress writes the checkpoint with every page it commits, so it would silently undo
the change: the change is made holding the source's lease, and refused while a run holds it.
"""

from __future__ import annotations

import uuid

from django.db.models.functions import Now

from etl.models import SourceLease
from etl.services.state import checkpoint_get, checkpoint_set, lease_acquire, lease_release
from kasparro.errors import ApplicationError

LEASE_SECONDS = 60


def _busy(source: str) -> ApplicationError:
    return ApplicationError(
        f"a run of {source} is in progress and would overwrite the checkpoint: "
        "try again when it has finished"
    )


def checkpoint_check_writable(*, source: str) -> None:
    """Raise ApplicationError while a run holds the source (early feedback for forms)."""
    if SourceLease.objects.filter(
        source=source, holder__isnull=False, expires_at__gt=Now()
    ).exists():
        raise _busy(source)


def checkpoint_rewind(*, source: str, cursor: dict) -> dict:
    """Set the cursor the next run resumes from; return the cursor it replaces."""
    if not isinstance(cursor, dict):
        raise ApplicationError("a cursor is a JSON object ({} starts from scratch)")
    holder = uuid.uuid4()
    # Holding the lease, no run can start (and read the old cursor) while we write.
    if not lease_acquire(source=source, holder=holder, seconds=LEASE_SECONDS):
        raise _busy(source)
    try:
        before = checkpoint_get(source=source)
        checkpoint_set(source=source, cursor=cursor)
    finally:
        lease_release(source=source, holder=holder)
    return before


def checkpoint_reset(*, source: str) -> dict:
    """Forget where the source was: its next run starts from the beginning."""
    return checkpoint_rewind(source=source, cursor={})
