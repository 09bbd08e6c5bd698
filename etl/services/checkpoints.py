"""Operator changes to a source's checkpoint: reset it (start from scratch) or rewind it.

A run in progress writes the checkpoint with every page it commits, so it would silently undo
the change: the change is made holding the source's claim, and refused while a run holds it.
"""

from __future__ import annotations

from etl.services.claim import SourceBusy, source_claim_holder, source_claimed
from etl.services.state import checkpoint_get, checkpoint_set
from kasparro.core.errors import ApplicationError


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
