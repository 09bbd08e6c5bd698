"""`manage.py etl run [--source NAME ...]`, `etl status`, `etl enqueue`, `etl schedule`,
`etl prune [--dry-run]`."""

from __future__ import annotations

import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from etl.faults import FaultPlan
from etl.models import Checkpoint, SourceLease
from etl.pipeline.run import ingest_run
from etl.services.retention import DEFAULT_BATCH, PruneReport, TableSize, raw_records_prune
from etl.services.run_retention import RunPruneReport, runs_prune
from etl.services.schedules import schedules_ensure
from etl.sources import REGISTRY, get_source_class
from etl.tuning import tune_for_throughput
from kasparro.core.catalogue import source_names
from runs.models import Run
from runs.services import run_enqueue


class Command(BaseCommand):
    help = "Run, inspect and schedule ingestion."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        run = sub.add_parser("run", help="run sources now, synchronously, with a progress bar")
        run.add_argument(
            "--source",
            action="append",
            dest="sources",
            metavar="NAME",
            help=f"one of {', '.join(REGISTRY)}; repeat for several (default: all)",
        )
        run.add_argument(
            "--faults", default=None, help="fault injection spec, e.g. 'coingecko:fetch:0.3,seed=1'"
        )
        run.add_argument("--no-progress", action="store_true", help="no progress bar")
        enqueue = sub.add_parser("enqueue", help="queue runs on the Celery worker")
        enqueue.add_argument("--source", action="append", dest="sources", metavar="NAME")
        sub.add_parser("status", help="sources, checkpoints, leases and last runs")
        sub.add_parser("schedule", help="create the missing schedules")
        prune = sub.add_parser(
            "prune", help="delete raw pages and runs past their retention that nothing needs"
        )
        prune.add_argument(
            "--dry-run", action="store_true", help="say what would be deleted; delete nothing"
        )
        prune.add_argument(
            "--days",
            type=int,
            default=None,
            help="keep pages fetched within this many days (default ETL_RAW_RETENTION_DAYS)",
        )
        prune.add_argument(
            "--run-days",
            type=int,
            default=None,
            help="keep runs started within this many days (default ETL_RUN_RETENTION_DAYS)",
        )
        prune.add_argument(
            "--batch-size", type=int, default=DEFAULT_BATCH, help="rows per transaction"
        )

    def _sources(self, names: list[str] | None) -> list[str]:
        if not names:
            return source_names()
        try:
            return [get_source_class(n).name for n in names]
        except KeyError as exc:
            raise CommandError(str(exc.args[0])) from None

    def handle(self, *args, action: str, **options):
        if action == "run":
            return self._run(self._sources(options["sources"]), options)
        if action == "enqueue":
            for name in self._sources(options["sources"]):
                run_enqueue(source=name, trigger=Run.Trigger.MANUAL)
                self.stdout.write(f"queued {name}")
            return None
        if action == "schedule":
            created = schedules_ensure()
            self.stdout.write(f"created: {', '.join(created)}" if created else "all present")
            return None
        if action == "prune":
            return self._prune(options)
        return self._status()

    def _prune(self, options) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        report = raw_records_prune(
            days=options["days"], batch_size=options["batch_size"], dry_run=options["dry_run"]
        )
        for line in prune_summary(report):
            self.stdout.write(line)
        runs = runs_prune(
            days=options["run_days"], batch_size=options["batch_size"], dry_run=options["dry_run"]
        )
        for line in runs_prune_summary(runs):
            self.stdout.write(line)

    def _run(self, names: list[str], options) -> None:
        try:
            plan = FaultPlan.parse(options["faults"]) if options["faults"] is not None else None
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        tune_for_throughput()
        show = not options["no_progress"] and options.get("verbosity", 1) > 0
        failed = []
        for name in names:
            bar = tqdm(
                desc=f"{name:<10}",
                unit=" items",
                file=sys.stderr,
                disable=not show,
                leave=True,
                dynamic_ncols=True,
            )

            def progress(event: dict, bar=bar) -> None:
                bar.update(event["items"])
                bar.set_postfix_str(event["page"][-40:], refresh=False)

            try:
                run = ingest_run(
                    source_name=name, trigger=Run.Trigger.CLI, faults=plan, progress=progress
                )
            finally:
                bar.close()
            self.stdout.write(self._summary(run))
            if run.status == Run.Status.FAILED:
                failed.append(name)
        if failed:
            raise CommandError(f"failed: {', '.join(failed)}")

    @staticmethod
    def _summary(run: Run) -> str:
        line = (
            f"{run.source}: {run.status} in {run.duration_seconds or 0:.1f}s - "
            f"{run.pages} page(s), {run.items_fetched} fetched, {run.items_inserted} inserted, "
            f"{run.items_updated} updated, {run.items_unchanged} unchanged, "
            f"{run.items_quarantined} quarantined (run {run.id})"
        )
        if run.error_message:
            line += f"\n  {run.error_class or 'note'}: {run.error_message}"
        return line

    def _status(self) -> None:
        checkpoints = {c.source: c for c in Checkpoint.objects.all()}
        leases = {lease.source: lease for lease in SourceLease.objects.filter(holder__isnull=False)}
        for name in source_names():
            source = REGISTRY[name]
            checkpoint = checkpoints.get(name)
            lease = leases.get(name)
            last = Run.objects.filter(source=name).exclude(status=Run.Status.SKIPPED).first()
            last_ok = Run.objects.filter(source=name, status=Run.Status.SUCCESS).first()
            self.stdout.write(self.style.MIGRATE_HEADING(name))
            cursor = checkpoint.cursor if checkpoint else {}
            self.stdout.write(f"  checkpoint : {source.describe_cursor(cursor)}")
            if lease:
                beat = f"last heartbeat {lease.renewed_at:%H:%M:%S}, " if lease.renewed_at else ""
                self.stdout.write(
                    f"  running    : run {lease.holder}, {beat}claim until {lease.expires_at}"
                )
            if last:
                self.stdout.write(
                    f"  last run   : {last.status} at {last.started_at:%Y-%m-%d %H:%M:%S} "
                    f"({last.items_inserted} inserted, {last.items_quarantined} quarantined)"
                )
                if last.error_message:
                    self.stdout.write(f"               {last.error_message[:200]}")
            else:
                self.stdout.write("  last run   : never")
            self.stdout.write(
                f"  last success: {last_ok.finished_at:%Y-%m-%d %H:%M:%S}"
                if last_ok
                else "  last success: never"
            )


def _bytes(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KB", "MB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GB"


def _size(size: TableSize) -> str:
    line = f"{size.rows} rows"
    if size.data_bytes is not None:
        line += f", {_bytes(size.data_bytes)} of data"
    return line if size.disk_bytes is None else f"{line}, {_bytes(size.disk_bytes)} on disk"


def runs_prune_summary(report: RunPruneReport) -> list[str]:
    if report.cutoff is None:
        lines = ["run retention is off (0 days): every run kept"]
    else:
        verb = "would delete" if report.dry_run else "deleted"
        lines = [
            f"runs started before {report.cutoff:%Y-%m-%d %H:%M} UTC"
            + (" (dry run: nothing deleted)" if report.dry_run else ""),
            f"  {verb}: {report.runs} run(s)"
            + ("" if report.dry_run else f" in {report.batches} batch(es)")
            + "; their counts stay in the run rollups",
            f"  kept: {report.kept} older run(s) still needed (a source's last run, raw pages "
            "or quarantined items pointing to them, drift events not replayed yet)",
        ]
    lines.append(f"  {Run._meta.db_table}: {_size(report.before)} -> {_size(report.after)}")
    return lines


def prune_summary(report: PruneReport) -> list[str]:
    """What `etl prune` prints: what went (or would), what was kept, sizes before and after."""
    if report.cutoff is None:
        lines = ["retention is off (0 days): nothing deleted"]
    else:
        verb = "would delete" if report.dry_run else "deleted"
        lines = [
            f"raw pages last fetched before {report.cutoff:%Y-%m-%d %H:%M} UTC"
            + (" (dry run: nothing deleted)" if report.dry_run else ""),
            f"  {verb}: {report.pages} page(s) ({_bytes(report.page_bytes)} of payload), "
            f"{report.bodies} page body(ies) ({_bytes(report.body_bytes)})"
            + ("" if report.dry_run else f" in {report.batches} batch(es)"),
            f"  kept: {report.kept_for_replay} older page(s) a replay still needs "
            "(drift events not replayed yet, open quarantined items)",
        ]
    for table, before in report.before.items():
        after = report.after.get(table, before)
        lines.append(f"  {table}: {_size(before)} -> {_size(after)}")
    return lines
