"""Retention of run rows: `runs_prune` deletes the runs that started more than
`ETL_RUN_RETENTION_DAYS` ago (0, the default, keeps every run), in short batches.

Nothing they counted is lost: every run was folded into the rollups (runs.rollups: RunTally's
counters and duration histogram, SourceRollup's last times) when it finished, and those are
never decremented by a delete, so /metrics and /health read the same after a prune. `/stats`
and `/runs` read the rows themselves: a window longer than the retention sees fewer runs.

Kept, however old: a running run; a source's last run (/health shows it); a run a raw page or a
quarantined item still points to (they are kept for replay and evidence: prune raw pages
first, etl.services.retention); a run a drift event not replayed yet met (its replay reads
that run's pages); the run that replayed a drift event (without it the event would look
unreplayed); the run that wrote a source's checkpoint. Deleting a run sets its children's
`parent` to null.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from crypto.versions import data_version_advance
from etl.models import Checkpoint, DriftEvent, QuarantinedRecord, RawRecord
from etl.services.retention import DEFAULT_BATCH, TableSize, replay_pending_events
from runs.models import Run, SourceRollup


@dataclasses.dataclass
class RunPruneReport:
    cutoff: dt.datetime | None  # None: retention is off
    dry_run: bool
    runs: int = 0  # deleted (or that would be)
    kept: int = 0  # older runs kept (see the module's docstring)
    batches: int = 0
    before: TableSize = dataclasses.field(default_factory=lambda: TableSize(0, None, None))
    after: TableSize = dataclasses.field(default_factory=lambda: TableSize(0, None, None))


def runs_table_size() -> TableSize:
    """Rows, and bytes on disk on PostgreSQL."""
    rows = Run.objects.count()
    if connection.vendor != "postgresql":
        return TableSize(rows, None, None)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size(%s::regclass)", [Run._meta.db_table])
        return TableSize(rows, None, cursor.fetchone()[0])


def runs_expired(cutoff: dt.datetime) -> QuerySet:
    """Runs started before `cutoff` that nothing still needs."""
    pending = DriftEvent.runs.through.objects.filter(
        driftevent__in=replay_pending_events(), run_id=OuterRef("pk")
    )
    return (
        Run.objects.filter(started_at__lt=cutoff)
        .exclude(status=Run.Status.RUNNING)
        .exclude(pk__in=SourceRollup.objects.filter(last_run__isnull=False).values("last_run"))
        .exclude(Exists(RawRecord.objects.filter(run=OuterRef("pk"))))
        .exclude(Exists(QuarantinedRecord.objects.filter(run=OuterRef("pk"))))
        .exclude(Exists(pending))
        .exclude(pk__in=DriftEvent.objects.filter(replay_run__isnull=False).values("replay_run"))
        .exclude(pk__in=Checkpoint.objects.filter(run__isnull=False).values("run"))
    )


def runs_prune(
    *, days: int | None = None, batch_size: int = DEFAULT_BATCH, dry_run: bool = False
) -> RunPruneReport:
    """Delete expired runs (`days`, default `ETL_RUN_RETENTION_DAYS`; 0 keeps all),
    `batch_size` per transaction; `dry_run` counts them and deletes nothing."""
    days = settings.ETL_RUN_RETENTION_DAYS if days is None else days
    report = RunPruneReport(cutoff=None, dry_run=dry_run, before=runs_table_size())
    if days <= 0:
        report.after = report.before
        return report
    report.cutoff = cutoff = timezone.now() - dt.timedelta(days=days)
    expired = runs_expired(cutoff)
    old = Run.objects.filter(started_at__lt=cutoff).count()
    if dry_run:
        report.runs = expired.count()
    else:
        after = None
        while True:
            with transaction.atomic():
                batch = expired.order_by("started_at", "pk")
                if after is not None:
                    batch = batch.filter(started_at__gte=after)
                ids = list(
                    batch.select_for_update(skip_locked=True, of=("self",)).values_list(
                        "pk", "started_at"
                    )[:batch_size]
                )
                if not ids:
                    break
                after = ids[-1][1]
                # Children lose their parent (SET_NULL); drift events lose the link.
                Run.objects.filter(pk__in=[pk for pk, _ in ids]).delete()
                data_version_advance()
                report.runs += len(ids)
                report.batches += 1
    report.kept = old - report.runs
    report.after = runs_table_size()
    return report
