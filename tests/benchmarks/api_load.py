"""Benchmark: the read API under gunicorn with 16 concurrent connections, against a history of
1,000,000 quotes, compared with /health in the same run; and every API query's plan.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kasparro_bench \\
        .venv/bin/python tests/benchmarks/api_load.py [--quotes 1000000]

It builds two databases through the real pipeline (a CSV drop of 1,000 coins x hourly rows):
`<name>_small` with 10,000 quotes and `<name>` with `--quotes` quotes, prints `EXPLAIN` for the
queries behind /data, /assets, /assets/{slug}/history and /news on the large one, then for each
database starts gunicorn and drives /data and /health with wrk (16 connections, 2 threads,
15 s each). /data should serve at least 0.8x the rate of /health, with a latency that does not
grow with the history.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Settings refuse a short key outside DEBUG: a fresh random one per benchmark run.
BENCH_SECRET_KEY = secrets.token_urlsafe(50)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.csv_ingest import reset_database, write_csv  # noqa: E402
from tests.support import gunicorn  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/kasparro_bench"
BENCH_ENV = {
    "SECRET_KEY": BENCH_SECRET_KEY,
    "LOG_LEVEL": "WARNING",
    "API_RATE_PER_ADDRESS": "100000000/s",
    "API_RATE_PER_KEY": "100000000/s",
}


def env_for(url: str) -> dict[str, str]:
    return {**os.environ, **BENCH_ENV, "DATABASE_URL": url}


def build(url: str, rows: int) -> None:
    reset_database(url)
    with tempfile.TemporaryDirectory() as folder:
        write_csv(Path(folder) / "drop.csv", rows)
        subprocess.run(
            [sys.executable, "manage.py", "etl", "run", "--source", "csv", "--no-progress"],
            cwd=ROOT,
            env={**env_for(url), "CSV_DROP_DIR": folder},
            check=True,
            stdout=subprocess.DEVNULL,
        )


def explain(url: str) -> str:
    code = """
from crypto.models import Asset
from crypto.selectors import asset_list, latest_quote_list, article_list
from crypto.models import Quote
import datetime as dt
asset = Asset.objects.get(slug="coin-0500")
end = dt.datetime(2024, 1, 20, tzinfo=dt.UTC)
cases = {
    "/data": latest_quote_list()[:10],
    "/data?source=csv&symbol=C0500": latest_quote_list(sources=["csv"], symbol="c0500")[:10],
    "/assets?symbol=C0500": asset_list(symbol="c0500")[:10],
    "/assets/{slug}/history?source=csv&start&end": Quote.objects.filter(
        asset=asset, source="csv", observed_at__gte=end - dt.timedelta(days=7),
        observed_at__lt=end).order_by("-observed_at")[:500],
    "/news": article_list()[:10],
}
for name, qs in cases.items():
    print("###", name)
    print(qs.explain(analyze=True))
"""
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=env_for(url),
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def wrk(url: str, seconds: int = 15, extra: list[str] | None = None) -> dict:
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", *(extra or []), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def ms(match) -> float:
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {
        "rps": rate,
        "p50_ms": ms(p50),
        "p99_ms": ms(p99),
        "errors": int(non2xx.group(1)) if non2xx else 0,
    }


def serve_and_measure(url: str) -> dict:
    with gunicorn(env_for(url), workers=4) as base:
        wrk(f"{base}/data", seconds=3)  # warm up every worker
        return {"health": wrk(f"{base}/health"), "data": wrk(f"{base}/data")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=1_000_000)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("this benchmark needs wrk (apt-get install wrk)")
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    small_url = f"{url}_small"

    build(small_url, 10_000)
    build(url, args.quotes)
    print(explain(url))
    results = {"10,000": serve_and_measure(small_url), f"{args.quotes:,}": serve_and_measure(url)}

    print("| quotes in history | endpoint | requests/s | p50 | p99 | non-2xx |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size, by_endpoint in results.items():
        for endpoint in ("health", "data"):
            r = by_endpoint[endpoint]
            print(
                f"| {size} | /{endpoint} | {r['rps']:,.0f} | {r['p50_ms']:.1f} ms "
                f"| {r['p99_ms']:.1f} ms | {r['errors']} |"
            )
    for size, by_endpoint in results.items():
        ratio = by_endpoint["data"]["rps"] / by_endpoint["health"]["rps"]
        print(f"/data at {ratio:.2f}x the rate of /health with {size} quotes")


if __name__ == "__main__":
    main()
