"""Benchmark: server time of the dashboard's pages under gunicorn (as shipped, 2 workers)
against a history of 1,000,000 quotes (1,000 coins x 1,000 hours, loaded through the real
CSV pipeline), measured one request at a time so the time is the server's.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kasparro_bench \\
        .venv/bin/python tests/benchmarks/dashboard_load.py [--quotes 1000000] [--requests 200]

Target: p50 under 100 ms for `/` and for an asset's page (its default 7-day range, and all of
its history by day).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.api_load import build, env_for  # noqa: E402
from tests.support import gunicorn  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/kasparro_bench_dashboard"
PAGES = [
    "/",
    "/?q=coin-05",
    "/coins/coin-0500/",
    "/coins/coin-0500/?range=all&interval=day",
    "/coins/coin-0500/?range=30d&interval=hour",
    "/articles/",
    "/pipeline/",
]


def timed(url: str, requests: int) -> dict:
    for _ in range(5):  # warm both workers
        urllib.request.urlopen(url, timeout=30).read()  # noqa: S310
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310
            response.read()
            assert response.status == 200
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "p50": statistics.median(times),
        "p95": times[int(len(times) * 0.95) - 1],
        "max": times[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--reuse", action="store_true", help="keep the database of a last run")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    if not args.reuse:
        build(url, args.quotes)
    with gunicorn(env_for(url), workers=2) as base:
        results = {page: timed(base + page, args.requests) for page in PAGES}
    print(f"| page ({args.quotes:,} quotes) | p50 | p95 | max |")
    print("| --- | --- | --- | --- |")
    for page, r in results.items():
        print(f"| `{page}` | {r['p50']:.1f} ms | {r['p95']:.1f} ms | {r['max']:.1f} ms |")


if __name__ == "__main__":
    main()
