"""Benchmark: ingest a 1,000,000-row CSV drop on PostgreSQL, against PostgreSQL's own COPY.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kasparro_bench \\
        .venv/bin/python tests/benchmarks/csv_ingest.py [--rows 1000000] [--rounds 3]

It (re)creates the benchmark database, migrates it, writes the CSV (1,000 coins x hourly
observations), then in separate processes so each has its own peak memory: our whole CSV run
(`etl` pipeline: read, hash, normalize, resolve, raw records, COPY to staging, INSERT, latest
quotes, the daily rollup, checkpoint per page) for a tenth of the rows, then rounds of
1. COPY of the file into an equivalent table (the columns typed like crypto_quote, with its
   primary key, unique key and time index), and into a plain table with no key or index,
2. our whole CSV run for all of them on a fresh database,
reporting each round's ratio, their median and range, and peak RSS. Memory that does not
grow with the file shows as the same peak RSS for both sizes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Settings refuse a short key outside DEBUG: a fresh random one per benchmark run.
BENCH_SECRET_KEY = secrets.token_urlsafe(50)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/kasparro_bench"
COINS = 1000


def write_csv(path: Path, rows: int) -> None:
    """1,000 coins, one row per coin per hour, realistic values and a CoinGecko-like id."""
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with path.open("w") as fh:
        fh.write("coin_id,name,symbol,price_usd,market_cap,volume_24h,last_updated\n")
        for n in range(rows):
            coin, hour = n % COINS, n // COINS
            ts = (start + dt.timedelta(hours=hour)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            price = 1000.0 / (coin + 1) * (1 + (hour % 97) / 1000)
            fh.write(
                f"coin-{coin:04d},Coin {coin:04d},c{coin:04d},{price:.6f},"
                f"{price * 1e6 * (COINS - coin):.0f},{price * 1e5:.0f},{ts}\n"
            )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def django_setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("SECRET_KEY", BENCH_SECRET_KEY)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kasparro.settings")
    import django

    django.setup()


# The file's columns, typed as our quote table types them.
COPY_COLUMNS = (
    "coin_id text, name text, symbol text, price_usd numeric(40,18), market_cap numeric(40,18),"
    " volume_24h numeric(40,18), last_updated timestamptz"
)
TABLES = {
    # no key, no index: the floor of what PostgreSQL can do
    "plain": f"CREATE TABLE bench_copy ({COPY_COLUMNS})",
    # what crypto_quote carries: a bigint primary key, the unique key of the series
    # (coin, time) and a B-tree on (time, id)
    "equivalent": (
        f"CREATE TABLE bench_copy (id bigserial PRIMARY KEY, {COPY_COLUMNS},"
        " UNIQUE (coin_id, last_updated));"
        " CREATE INDEX ON bench_copy (last_updated DESC, id DESC)"
    ),
}


def child_copy(url: str, csv_path: Path, table: str) -> dict:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS bench_copy")
        db.execute(TABLES[table])
        started = time.perf_counter()
        copy_sql = (
            "COPY bench_copy (coin_id, name, symbol, price_usd, market_cap, volume_24h,"
            " last_updated) FROM STDIN WITH (FORMAT csv, HEADER true)"
        )
        with db.cursor() as cur, csv_path.open("rb") as fh, cur.copy(copy_sql) as copy:
            while chunk := fh.read(1 << 20):
                copy.write(chunk)
        seconds = time.perf_counter() - started
        rows = db.execute("SELECT count(*) FROM bench_copy").fetchone()[0]
        db.execute("DROP TABLE bench_copy")
    return {"rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def child_ingest(url: str, folder: Path) -> dict:
    django_setup(url)
    from django.conf import settings

    from crypto.models import Quote
    from etl.pipeline.run import ingest_run
    from etl.tuning import tune_for_throughput

    settings.CSV_DROP_DIR = folder
    tune_for_throughput()  # as the worker and `etl run` are
    started = time.perf_counter()
    run = ingest_run(source_name="csv", trigger="cli")
    seconds = time.perf_counter() - started
    assert run.status == "success", (run.status, run.error_message)
    return {
        "rows": run.items_inserted,
        "quotes_in_db": Quote.objects.filter(source="csv").count(),
        "pages": run.pages,
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
    }


def reset_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": BENCH_SECRET_KEY}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )


def in_child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=["copy", "ingest"])
    parser.add_argument("--path")
    parser.add_argument("--table", choices=sorted(TABLES), default="equivalent")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    if not url.startswith("postgres"):
        sys.exit("this benchmark needs DATABASE_URL pointing at PostgreSQL")

    if args.child == "copy":
        print(json.dumps(child_copy(url, Path(args.path), args.table)))
        return
    if args.child == "ingest":
        print(json.dumps(child_ingest(url, Path(args.path))))
        return

    with tempfile.TemporaryDirectory() as tmp:
        small, large = Path(tmp, "small"), Path(tmp, "large")
        small.mkdir()
        large.mkdir()
        write_csv(small / "drop.csv", args.rows // 10)
        write_csv(large / "drop.csv", args.rows)
        size_mb = (large / "drop.csv").stat().st_size / 1e6
        print(f"CSV: {args.rows:,} rows, {size_mb:.0f} MB", flush=True)

        reset_database(url)
        small_run = in_child("--child", "ingest", "--path", str(small))
        print(f"ingest {args.rows // 10:,} rows: {small_run}", flush=True)
        # Rounds alternate PostgreSQL's COPY and our run on a fresh database, each after a
        # CHECKPOINT, so that a slow minute of a shared machine or a checkpoint falls on one
        # pair, not on one side of every comparison.
        rounds = []
        for number in range(1, args.rounds + 1):
            result = {}
            for table in TABLES:
                checkpoint(url)
                result[table] = in_child(
                    "--child", "copy", "--table", table, "--path", str(large / "drop.csv")
                )
            reset_database(url)
            checkpoint(url)
            result["ingest"] = in_child("--child", "ingest", "--path", str(large))
            rounds.append(result)
            print(
                f"round {number}: COPY equivalent {result['equivalent']['seconds']:.1f} s,"
                f" plain {result['plain']['seconds']:.1f} s;"
                f" ours {result['ingest']['seconds']:.1f} s ({ratio(result, 'equivalent'):.2f}x)",
                flush=True,
            )

    def rates(key: str) -> list[float]:
        return [r[key]["rows"] / r[key]["seconds"] for r in rounds]

    def span(values: list[float], fmt: str) -> str:
        low, mid, high = (
            format(v, fmt) for v in (min(values), statistics.median(values), max(values))
        )
        return f"{mid} ({low}-{high})"

    equivalent = [ratio(r, "equivalent") for r in rounds]
    plain = [ratio(r, "plain") for r in rounds]
    seconds = [r["ingest"]["seconds"] for r in rounds]
    print()
    print(f"median of {len(rounds)} rounds (range)\n")
    print("| measure | value |\n| --- | --- |")
    print(f"| rows in the file | {args.rows:,} ({size_mb:.0f} MB) |")
    print(
        f"| COPY into an equivalent table (key, unique key, time) |"
        f" {span(rates('equivalent'), ',.0f')} rows/s |"
    )
    print(f"| COPY into a plain table (no key, no index) | {span(rates('plain'), ',.0f')} rows/s |")
    print(
        f"| Kasparro CSV run, end to end | {span(rates('ingest'), ',.0f')} rows/s"
        f" ({span(seconds, '.1f')} s) |"
    )
    print(f"| ratio to COPY, equivalent table (same round) | {span(equivalent, '.2f')}x |")
    print(f"| ratio to COPY, plain table (same round) | {span(plain, '.2f')}x |")
    peaks = [r["ingest"]["peak_rss_mb"] for r in rounds]
    print(
        f"| peak RSS of the run, {args.rows // 10:,} rows / {args.rows:,} rows | "
        f"{small_run['peak_rss_mb']:.0f} MB / {max(peaks):.0f} MB |"
    )


def ratio(result: dict, table: str) -> float:
    """Our rate over COPY's, in one round."""
    ours = result["ingest"]["rows"] / result["ingest"]["seconds"]
    return ours / (result[table]["rows"] / result[table]["seconds"])


def checkpoint(url: str) -> None:
    import psycopg

    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as db:
        db.execute("CHECKPOINT")


if __name__ == "__main__":
    main()
