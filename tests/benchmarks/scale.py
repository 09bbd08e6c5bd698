"""Benchmark: what years of runs and tens of millions of quotes cost per request. For each level
it builds a PostgreSQL database (quotes through the real CSV pipeline: 1,000 coins x hourly
rows; hourly runs of the three sources written as rows, their rollups filled by the same
backfill an upgrade runs), serves it with gunicorn as shipped (2 workers, one server per level, all
up at once) and drives each endpoint with wrk (2 threads, 16 connections), the levels in
alternating rounds (median of --rounds).

    .venv/bin/python tests/benchmarks/scale.py [--big] [--seconds 6] [--rounds 3] \\
        [--rss-requests 0] [--reuse] [--history-only] [--only-big] [--prefix kasparro_scale]

Levels: 100 runs with 100k quotes, 10k runs with 1M quotes, and with --big 100k runs (3.8
years of hourly runs of three sources) with 10M quotes. The table gives requests/s and p50
per endpoint and level, and each endpoint's rate as a fraction of its rate at the first level.
--rss-requests N also sends N requests to /data at the last level and prints each worker's RSS
before and after (does a worker leak without recycling?). DATABASE_URL names the server (its
database name is replaced per level: `<prefix>_<runs>`).

The history table times every parameter combination one request at a time, each request a
computed answer: answers are cached by data version (crypto/response_cache.py), so each
request carries an extra parameter the API ignores and that changes every time
(`&cold=<random>-<n>`), which makes it a new cache key. `--history-only` measures only that
table (no wrk matrix); `--only-big` only the 10M level (with --big).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.api_load import build, env_for, wrk  # noqa: E402
from tests.support import PYTHON, gunicorn  # noqa: E402

SERVER = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/x").rsplit("/", 1)[0]
LEVELS = [(100, 100_000), (10_000, 1_000_000)]
BIG = (100_000, 10_000_000)
ENDPOINTS = [
    ("/health", False),
    ("/stats", True),
    ("/metrics", False),
    ("/assets/coin-0500/history?interval=day", False),
    ("/assets/coin-0500/history", False),
    ("/data?limit=10", False),
    ("/runs", True),
]

RUNS_SQL = """
INSERT INTO runs_run (id, source, status, trigger, task_id, host, started_at, finished_at,
    heartbeat_at, pages, items_fetched, items_inserted, items_updated, items_unchanged,
    items_quarantined, drift_findings, findings, error_class, retryable, error_message)
SELECT gen_random_uuid(), (ARRAY['coingecko', 'rss', 'csv'])[1 + i %% 3],
    CASE WHEN i %% 23 = 0 THEN 'failed' WHEN i %% 31 = 0 THEN 'partial' ELSE 'success' END,
    'beat', '', 'bench:1', now() - (i / 3) * interval '1 hour',
    now() - (i / 3) * interval '1 hour' + (5 + i %% 40) * interval '1 second',
    now() - (i / 3) * interval '1 hour', 2, 250, 10, 5, 235, i %% 2, 0, '[]'::jsonb, '', false, ''
FROM generate_series(1, %s) AS i
"""

BACKFILL = """
import importlib
from django.apps import apps
from runs.models import RunTally, SourceRollup
RunTally.objects.all().delete()
SourceRollup.objects.all().delete()
importlib.import_module("runs.migrations.0007_backfill_rollups").backfill(apps, None)
"""
NEW_KEY = """
import uuid
from kasparro.core.apikeys.services import apikey_create
print(apikey_create(name=f"bench-{uuid.uuid4().hex[:8]}")[1])
"""


def new_api_key(url: str, before: str = "") -> str:
    """A new API key in the database at `url` (after running `before`, shell code)."""
    out = subprocess.run(
        [PYTHON, "manage.py", "shell", "--no-imports", "-c", before + NEW_KEY],
        cwd=ROOT,
        env=env_for(url),
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def level_url(runs: int, prefix: str) -> str:
    return f"{SERVER}/{prefix}_{runs}"


def build_level(runs: int, quotes: int, prefix: str) -> tuple[str, str]:
    import psycopg

    url = level_url(runs, prefix)
    started = time.perf_counter()
    build(url, quotes)
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(RUNS_SQL, (runs - 1,))  # the CSV load itself was the first run
        db.execute("VACUUM ANALYZE")
    key = new_api_key(url, before=BACKFILL)
    print(f"built {runs:,} runs / {quotes:,} quotes in {time.perf_counter() - started:.0f}s")
    return url, key


def rss_mb(master: int) -> list[float]:
    """RSS in MB of each gunicorn worker (the master's children)."""
    out = subprocess.run(
        ["ps", "-o", "pid=,ppid=,rss=", "-e"], check=True, capture_output=True, text=True
    ).stdout
    rows = [line.split() for line in out.splitlines()]
    return sorted(round(int(rss) / 1024, 1) for _, ppid, rss in rows if int(ppid) == master)


HISTORY = "/assets/coin-0500/history"
HISTORY_CASES = [
    f"?interval={interval}{source}{window}"
    for interval in ("raw", "hour", "day")
    for source in ("", "&source=csv")
    for window in ("", "&limit=10", "&start=2024-01-02T00:00:00Z&end=2024-01-04T00:00:00Z")
]


def one_at_a_time(url: str, requests: int = 30) -> tuple[float, bytes]:
    """p50 in ms of `requests` sequential requests (the server's time, no queueing), each a
    computed answer: a parameter the API ignores, new every request, misses the cache."""
    times = []
    salt = secrets.token_hex(4)
    for n in range(requests + 3):
        cold = f"{url}{'&' if '?' in url else '?'}cold={salt}-{n}"
        started = time.perf_counter()
        with urllib.request.urlopen(cold, timeout=60) as response:  # noqa: S310
            body = response.read()
            assert response.status == 200, url
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times[3:]), body


def history_p50(base: str) -> dict[str, float]:
    """Every parameter combination of the history, and a second page through its cursor;
    first every case a few times unmeasured, so that no case pays a worker's first requests
    (its new database connection's catalog lookups, lazy imports)."""
    found = {}
    for case in HISTORY_CASES * 4:
        with urllib.request.urlopen(f"{base}{HISTORY}{case}&cold=warm-{secrets.token_hex(4)}"):  # noqa: S310
            pass
    for case in HISTORY_CASES:
        found[case], body = one_at_a_time(base + HISTORY + case)
        following = json.loads(body)["next"]
        if following and "limit=10" in case:
            found[case + " (page 2)"], _ = one_at_a_time(following)
    return found


def measure_all(
    servers: dict, keys: dict, seconds: int, rounds: int, rss_requests: int, endpoints: list
) -> dict:
    """Every endpoint on every level in alternating rounds (level A, B, C, then again), the
    median of the rounds: a busy moment of the machine lands on every level alike."""
    results: dict = {level: {"history": history_p50(base)} for level, base in servers.items()}
    for path, keyed in endpoints:
        samples: dict = {level: [] for level in servers}
        for level, base in servers.items():
            headers = {"X-API-Key": keys[level]} if keyed else {}
            request = urllib.request.Request(base + path, headers=headers)  # noqa: S310
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                assert response.status == 200, (path, response.status)
            wrk(base + path, seconds=2, extra=_headers(keys[level], keyed))  # warm both workers
        for _ in range(rounds):
            for level, base in servers.items():
                samples[level].append(
                    wrk(base + path, seconds=seconds, extra=_headers(keys[level], keyed))
                )
        for level, runs in samples.items():
            runs.sort(key=lambda r: r["rps"])
            results[level][path] = runs[len(runs) // 2]
    if rss_requests:
        level, base = list(servers.items())[-1]
        master = _master(base)
        before = rss_mb(master)
        rate = results[level]["/data?limit=10"]["rps"] or 100
        wrk(base + "/data?limit=10", seconds=max(5, int(rss_requests / rate)))
        results[level]["rss"] = (before, rss_mb(master), rss_requests)
    return results


def _headers(key: str, keyed: bool) -> list[str]:
    return ["-H", f"X-API-Key: {key}"] if keyed else []


def _master(base: str) -> int:
    """The gunicorn master serving `base`: the lowest pid of those bound to its port."""
    out = subprocess.run(
        ["pgrep", "-f", f"gunicorn .*--bind 127.0.0.1:{base.rsplit(':', 1)[1]}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return min(int(pid) for pid in out.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", action="store_true", help="also 100k runs and 10M quotes")
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rss-requests", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="keep the databases of a last run")
    parser.add_argument("--history-only", action="store_true", help="only the history table")
    parser.add_argument("--only-big", action="store_true", help="only the 10M level (--big)")
    parser.add_argument("--prefix", default="kasparro_scale", help="database names' prefix")
    args = parser.parse_args()
    endpoints = [] if args.history_only else ENDPOINTS
    if endpoints and not shutil.which("wrk"):
        sys.exit("this benchmark needs wrk (apt-get install wrk)")
    levels = [*LEVELS, BIG] if args.big else LEVELS
    if args.only_big:
        levels = [BIG]
    urls, keys = {}, {}
    for runs, quotes in levels:
        if args.reuse:
            url = level_url(runs, args.prefix)
            subprocess.run(
                [PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env_for(url), check=True
            )
            key = new_api_key(url)
        else:
            url, key = build_level(runs, quotes, args.prefix)
        urls[runs, quotes], keys[runs, quotes] = url, key
    with contextlib.ExitStack() as stack:
        servers = {
            level: stack.enter_context(gunicorn(env_for(url), workers=2))
            for level, url in urls.items()
        }
        results = measure_all(
            servers, keys, args.seconds, args.rounds, args.rss_requests, endpoints
        )
    print_tables(levels, results, endpoints)


def print_tables(levels: list, results: dict, endpoints: list) -> None:
    heads = [f"{q / 1e6:g}M quotes, {r:,} runs" for r, q in levels]
    print("| endpoint | " + " | ".join(heads) + " | last / first |")
    print("| --- |" + " --- |" * (len(levels) + 1))
    first = levels[0]
    for path, _ in endpoints:
        cells = [
            f"{r['rps']:,.0f} req/s (p50 {r['p50_ms']:.1f} ms)"
            for r in (results[level][path] for level in levels)
        ]
        ratio = results[levels[-1]][path]["rps"] / results[first][path]["rps"]
        print(f"| `{path}` | " + " | ".join(cells) + f" | {ratio:.2f}x |")
    for level in levels:
        errors = {
            p: r["errors"]
            for p, r in results[level].items()
            if p not in ("rss", "history") and r["errors"]
        }
        if errors:
            print(f"non-2xx answers at {level}: {errors}")
    print()
    print("| history, one request at a time (p50, computed answers) | " + " | ".join(heads) + " |")
    print("| --- |" + " --- |" * len(levels))
    for case in results[levels[-1]]["history"]:
        cells = [f"{results[level]['history'].get(case, float('nan')):.1f} ms" for level in levels]
        print(f"| `{case}` | " + " | ".join(cells) + " |")
    rss = results[levels[-1]].get("rss")
    if rss:
        before, after, count = rss
        print(f"worker RSS before / after {count:,} requests to /data: {before} -> {after} MB")


if __name__ == "__main__":
    main()
