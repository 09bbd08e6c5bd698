"""Runs left `running` by a worker that died: once their lease is gone, they are failed
(abandoned), so operators see them and can retry them. Their committed pages stay committed;
the next run resumes from the checkpoint."""

from __future__ import annotations

import logging

from django.db.models import Q
from django.utils import timezone

from etl.models import SourceLease
from runs.models import Run

logger = logging.getLogger(__name__)

ABANDONED = "abandoned: its worker stopped without finishing (lease expired); it can be retried"


def runs_reap_abandoned(*, source: str | None = None) -> int:
    """Fail every running run that no longer holds a live lease on its source."""
    now = timezone.now()
    live = SourceLease.objects.filter(holder__isnull=False, expires_at__gt=now)
    if source:
        live = live.filter(source=source)
    holders = set(live.values_list("holder", flat=True))
    running = Run.objects.filter(status=Run.Status.RUNNING)
    if source:
        running = running.filter(source=source)
    abandoned = running.filter(~Q(pk__in=holders)) if holders else running
    count = abandoned.update(
        status=Run.Status.FAILED,
        finished_at=now,
        error_class="etl.exceptions.RunAbandoned",
        error_message=ABANDONED,
    )
    if count:
        logger.warning("abandoned runs failed", extra={"count": count, "source": source})
    return count
