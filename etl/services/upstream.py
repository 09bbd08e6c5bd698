"""Upstream responses by HTTP status, summed per source for /metrics."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import F

from etl.models import UpstreamCounter


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
