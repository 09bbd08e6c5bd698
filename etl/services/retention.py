"""Retention of raw pages: `raw_records_prune` deletes the RawRecords last fetched more than
`ETL_RAW_RETENTION_DAYS` ago, and the bodies no page refers to any more, in short batches.

What a replay reads is never deleted, however old (see etl/pipeline/replay.py):
- `runs_replay` / `drift_replay` read every RawRecord of the runs a drift event met, and the
  raw pages their quarantined items came from: kept while the event is open, or accepted by
  an operator and not replayed yet (an event the evolve policy accepted by itself was applied
  as the pages came; a rejected one is never replayed);
- quarantined items still open keep the page they came from (quarantine replay reads the
  item's own copy, but the page is its evidence, shown in admin).
A run's retry resumes from the checkpoint and fetches again: it reads no RawRecord.

Each batch is one short transaction that locks only its own rows (`SKIP LOCKED` on
PostgreSQL): a page transaction that is storing or re-using a row holds its lock
(`raw_record_store`), so the prune passes it by, and a row the prune deleted first is stored
again by the page. No table lock; ingestion goes on meanwhile.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from etl.models import DriftEvent, QuarantinedRecord, RawBody, RawRecord

DEFAULT_BATCH = 2000


@dataclasses.dataclass(frozen=True)
class TableSize:
    """Rows and bytes of one table. `data_bytes`: the stored values (payloads and bodies; None
    where not measured); `disk_bytes`: the table with its indexes and TOAST on disk
    (PostgreSQL only)."""

    rows: int
    data_bytes: int | None
    disk_bytes: int | None


@dataclasses.dataclass
class PruneReport:
    cutoff: dt.datetime | None  # None: retention is off, nothing is deleted
    dry_run: bool
    pages: int = 0  # RawRecords deleted (or that would be)
    page_bytes: int = 0  # their payloads
    bodies: int = 0  # RawBodies deleted (or that would be)
    body_bytes: int = 0
    kept_for_replay: int = 0  # old pages kept because a replay needs them
    batches: int = 0
    before: dict[str, TableSize] = dataclasses.field(default_factory=dict)
    after: dict[str, TableSize] = dataclasses.field(default_factory=dict)


def raw_tables_size() -> dict[str, TableSize]:
    """Rows and bytes of the raw tables, without reading a page body."""
    tables = {
        RawRecord._meta.db_table: "payload",
        RawBody._meta.db_table: "data",
    }
    postgres = connection.vendor == "postgresql"
    # pg_column_size/octet_length read a TOASTed value's header, not the value.
    measure = "pg_column_size({})" if postgres else "length({})"
    sizes = {}
    with connection.cursor() as cursor:
        for table, column in tables.items():
            quoted, col = connection.ops.quote_name(table), connection.ops.quote_name(column)
            total = f"coalesce(sum({measure.format(col)}), 0)"
            cursor.execute(f"SELECT count(*), {total} FROM {quoted}")  # noqa: S608 - our tables
            rows, data = cursor.fetchone()
            disk = None
            if postgres:
                cursor.execute("SELECT pg_total_relation_size(%s::regclass)", [table])
                disk = cursor.fetchone()[0]
            sizes[table] = TableSize(rows, int(data), disk)
    return sizes


def replay_pending_events() -> QuerySet:
    return DriftEvent.objects.filter(
        Q(status=DriftEvent.Status.OPEN)
        | Q(
            status=DriftEvent.Status.ACCEPTED,
            replay_run__isnull=True,
            resolved_by__isnull=False,
        )
    )


def raw_records_needed() -> QuerySet:
    """Every RawRecord a replay may still read, whatever its age."""
    runs = DriftEvent.runs.through.objects.filter(driftevent__in=replay_pending_events()).values(
        "run_id"
    )
    evidence = QuarantinedRecord.objects.filter(raw_record=OuterRef("pk"))
    return RawRecord.objects.filter(
        Q(run_id__in=runs)
        | Exists(evidence.filter(status=QuarantinedRecord.Status.OPEN))
        | Exists(evidence.filter(run_id__in=runs))
    )


def raw_records_expired(cutoff: dt.datetime) -> QuerySet:
    """Pages last fetched before `cutoff` that no replay needs."""
    needed = raw_records_needed().filter(pk=OuterRef("pk"))
    return RawRecord.objects.filter(last_seen_at__lt=cutoff).exclude(Exists(needed))


def _orphan_bodies() -> QuerySet:
    return RawBody.objects.exclude(Exists(RawRecord.objects.filter(body=OuterRef("pk"))))


def raw_records_prune(
    *,
    days: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    dry_run: bool = False,
    progress: Callable[[PruneReport], None] | None = None,
) -> PruneReport:
    """Delete expired raw pages (`days`, default `ETL_RAW_RETENTION_DAYS`; 0 keeps all) and
    the bodies left without a page, `batch_size` rows per transaction. `dry_run` counts what
    would go and deletes nothing. Sizes before and after are in the report."""
    days = settings.ETL_RAW_RETENTION_DAYS if days is None else days
    report = PruneReport(cutoff=None, dry_run=dry_run, before=raw_tables_size())
    if days <= 0:
        report.after = report.before
        return report
    report.cutoff = cutoff = timezone.now() - dt.timedelta(days=days)
    expired = raw_records_expired(cutoff)
    report.kept_for_replay = (
        RawRecord.objects.filter(last_seen_at__lt=cutoff).count() - expired.count()
    )
    if dry_run:
        _count_what_would_go(report, expired)
    else:
        _delete_in_batches(report, expired, max(1, batch_size), progress)
        _vacuum()
    report.after = raw_tables_size()
    return report


def _count_what_would_go(report: PruneReport, expired: QuerySet) -> None:
    # Counted in Python over ids: one row per page of thousands of items keeps these lists
    # short, and the planner need not weigh a subquery inside a subquery per body.
    pages = list(expired.values_list("payload_size", "body_id"))
    report.pages = len(pages)
    report.page_bytes = sum(size for size, _ in pages)
    going = Counter(body for _, body in pages if body is not None)
    referenced = dict(
        RawRecord.objects.filter(body_id__in=list(going))
        .values_list("body_id")
        .annotate(n=Count("pk"))
    )
    gone = [body for body, n in going.items() if referenced.get(body) == n]
    orphans = list(_orphan_bodies().values_list("pk", flat=True))
    totals = RawBody.objects.filter(pk__in=gone + orphans).aggregate(
        n=Count("pk"), size=Sum("size")
    )
    report.bodies, report.body_bytes = totals["n"] or 0, totals["size"] or 0


def _delete_in_batches(report, expired: QuerySet, batch_size: int, progress) -> None:
    after = 0
    while True:
        with transaction.atomic():
            batch = list(
                expired.filter(pk__gt=after)
                .order_by("pk")
                .select_for_update(skip_locked=True)
                .values_list("pk", "payload_size", "body_id")[:batch_size]
            )
            if not batch:
                break
            after = batch[-1][0]
            ids = [pk for pk, _, _ in batch]
            # Only ids are read. Replayed or discarded quarantined items keep their own copy and
            # lose the link to the page (SET_NULL); open ones kept it from being expired.
            RawRecord.objects.filter(pk__in=ids).only("pk").delete()
            report.pages += len(ids)
            report.page_bytes += sum(size for _, size, _ in batch)
            bodies = {body for _, _, body in batch if body is not None}
            _delete_bodies(report, _orphan_bodies().filter(pk__in=bodies))
            report.batches += 1
        if progress is not None:
            progress(report)
    # Bodies orphaned by other means (pages deleted in admin) go too.
    after = 0
    while True:
        with transaction.atomic():
            batch = list(
                _orphan_bodies()
                .filter(pk__gt=after)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not batch:
                break
            after = batch[-1]
            _delete_bodies(report, _orphan_bodies().filter(pk__in=batch))


def _delete_bodies(report: PruneReport, orphans: QuerySet) -> None:
    locked = list(orphans.select_for_update(skip_locked=True).values_list("pk", flat=True))
    if not locked:
        return
    # Asked again now that they are ours: a page that took one of them and committed between
    # the first look and the lock is seen by this new statement (PostgreSQL, read committed).
    gone = list(_orphan_bodies().filter(pk__in=locked).values_list("pk", "size"))
    RawBody.objects.filter(pk__in=[pk for pk, _ in gone]).only("pk").delete()
    report.bodies += len(gone)
    report.body_bytes += sum(size for _, size in gone)


def _vacuum() -> None:
    """PostgreSQL: make the freed space reusable now and give back the empty pages at the
    end of the files (plain VACUUM: it takes no lock that blocks reads or writes)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    with connection.cursor() as cursor:
        for model in (RawRecord, RawBody):
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(model._meta.db_table)}")
