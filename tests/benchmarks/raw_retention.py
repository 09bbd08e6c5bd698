"""Benchmark: what raw pages cost, what dedupe saves and what `etl prune` gives back, on
PostgreSQL, through the real CSV pipeline.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kasparro_bench_raw \\
        .venv/bin/python tests/benchmarks/raw_retention.py [--rows 100000]

It (re)creates the database, migrates it, then:
1. ingests a file of `--rows` rows (1,000 coins x hourly rows, as tests/benchmarks/csv_ingest.py);
2. drops the same file again under another name and ingests it (0 rows changed): the raw
   tables grow by one small page row per page, not by the bodies;
3. ingests a second day's file of as many new rows;
4. makes the first two runs' pages 40 days old and runs `etl prune --dry-run`, then
   `etl prune` (default batch size, PostgreSQL VACUUM at the end), printing their output;
5. ingests a third day's file: on disk, it fills the space the prune freed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.csv_ingest import (
    django_setup,
    reset_database,
    write_csv,
)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/kasparro_bench_raw"


def mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    reset_database(url)
    django_setup(url)

    from django.core.management import call_command, get_commands, load_command_class
    from django.db.models import Sum
    from django.utils import timezone

    from etl.models import RawBody, RawRecord
    from etl.pipeline.run import ingest_run
    from etl.services.retention import raw_tables_size

    def sizes(label: str) -> dict:
        found = raw_tables_size()
        cells = [
            f"{table} {s.rows} rows, data {mb(s.data_bytes)}, disk {mb(s.disk_bytes)}"
            for table, s in found.items()
        ]
        print(f"{label:<28}" + " | ".join(cells))
        return found

    def ingest(folder: Path, label: str):
        from django.conf import settings

        settings.CSV_DROP_DIR = folder
        started = time.perf_counter()
        run = ingest_run(source_name="csv", trigger="cli")
        print(
            f"{label:<28}{run.status}: {run.items_fetched} fetched, {run.items_inserted} "
            f"inserted, {run.items_unchanged} unchanged, {run.pages} pages in "
            f"{time.perf_counter() - started:.1f}s"
        )
        assert run.status == "success", run.error_message
        return run

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "drop"
        folder.mkdir()
        days = Path(tmp) / "days.csv"
        write_csv(days, args.rows * 3)  # three days of new rows, split below
        with days.open() as src:
            header, *lines = src.readlines()

        def write_day(n: int) -> None:
            with (folder / f"day{n}.csv").open("w") as dst:
                dst.writelines([header, *lines[(n - 1) * args.rows : n * args.rows]])

        write_day(1)
        print(f"file: {args.rows} rows, {(folder / 'day1.csv').stat().st_size / 1e6:.1f} MB")

        first = ingest(folder, "day1.csv")
        one = sizes("after day1.csv")
        bodies = one["etl_rawbody"].data_bytes
        print(f"  raw body bytes per row: {bodies / args.rows:.1f} B")

        shutil.copy(folder / "day1.csv", folder / "day1-again.csv")
        again = ingest(folder, "day1-again.csv (same bytes)")
        two = sizes("after day1-again.csv")
        shared = RawRecord.objects.filter(run=again).aggregate(s=Sum("body__size"))["s"] or 0
        grew = {t: two[t].data_bytes - one[t].data_bytes for t in two}
        print(
            f"  grew by {grew}; the bodies it shares ({mb(shared)}) were stored again before dedupe"
        )

        write_day(2)
        ingest(folder, "day2.csv (new rows)")
        sizes("after day2.csv")

        newest = list(RawRecord.objects.select_related("body").order_by("-fetched_at")[:100])
        listed = sum(r.payload_size + (r.body.size if r.body else 0) for r in newest)
        print(
            f"admin list ({len(newest)} pages, one screen) read {mb(listed)} of payloads and "
            "bodies before; it reads their sizes now"
        )

        RawRecord.objects.filter(run__in=[first, again]).update(
            last_seen_at=timezone.now() - dt.timedelta(days=40)
        )
        get_commands()  # loaded once, outside the timings, as is the ingestions' garbage
        gc.collect()
        load_command_class("etl", "etl")
        for extra in (["--dry-run"], []):
            out = io.StringIO()
            started = time.perf_counter()
            call_command("etl", "prune", *extra, stdout=out)
            print(f"$ etl prune {' '.join(extra)}  ({time.perf_counter() - started:.2f}s)")
            print(out.getvalue().rstrip())
        print(f"bodies left: {RawBody.objects.count()}")
        write_day(3)
        ingest(folder, "day3.csv (new rows)")
        sizes("after day3.csv")


if __name__ == "__main__":
    main()
