"""Benchmark: hot reads against the framework's floor, in one run (issue 16).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kasparro_floor \\
    REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python tests/benchmarks/api_floor.py [--seconds 3] [--rounds 7]

It builds the database through the real pipeline from the repository's samples (CoinGecko's two
pages and three RSS feeds served by a local server, the shipped CSV drop), starts gunicorn as
shipped (2 workers, its config; Redis for the cache and the throttles, their limits lifted so
that every answer is a real one, but still charged) and drives each endpoint with wrk (2
threads, 16 connections), all endpoints in alternating rounds, the median of `--rounds`
(the table shows each endpoint's range). On a socket shared by the workers a run's 16
keep-alive connections could all land on one worker and halve its rate; since each worker
listens on its own (`reuse_port` in deploy/gunicorn.conf.py) the rounds agree far better.

- the floor: a JSON 404 through every middleware;
- each read endpoint warm (the same request again: the cached body) and cold (a parameter
  that changes at every request, so every answer is computed and cached anew);
- a 304 (`If-None-Match` with the current ETag);
- `/health`, `/stats` (with a key) and `/metrics` as they are.

The table gives requests/s, p50 and the fraction of the floor, against the issue's targets.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.api_load import env_for, wrk  # noqa: E402
from tests.benchmarks.csv_ingest import reset_database  # noqa: E402
from tests.benchmarks.scale import new_api_key  # noqa: E402
from tests.support import PYTHON, gunicorn  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
FEEDS = ("coindesk", "cointelegraph", "decrypt")
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/kasparro_floor"

# (label, path, keyed, cold too, warm target, cold target)
CASES = [
    ("/data?limit=10", "/data?limit=10", False, True, 0.5, 0.25),
    ("/data?symbol=BTC", "/data?symbol=BTC", False, True, 0.5, 0.25),
    ("/data?limit=100", "/data?limit=100", False, True, 0.3, None),
    ("/assets/bitcoin", "/assets/bitcoin", False, True, 0.5, 0.25),
    (
        "/assets/bitcoin/history?source=coingecko",
        "/assets/bitcoin/history?source=coingecko",
        False,
        True,
        0.5,
        0.25,
    ),
    ("/news?limit=10", "/news?limit=10", False, True, 0.5, 0.25),
    ("/health", "/health", False, False, 0.5, None),
    ("/stats (key)", "/stats", True, False, 0.3, None),
    ("/metrics", "/metrics", False, False, 0.3, None),
]

# Every request a new value of a parameter the views ignore: a new cache key, so a miss.
COLD_SCRIPT = """
local counter = 0
local id = tostring(math.random(1, 1000000000))
request = function()
  counter = counter + 1
  local sep = string.find(wrk.path, "?", 1, true) and "&" or "?"
  return wrk.format(nil, wrk.path .. sep .. "cold=" .. id .. "-" .. counter)
end
"""


class Upstream(http.server.BaseHTTPRequestHandler):
    """CoinGecko's markets pages and the RSS feeds, from the test fixtures."""

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path.endswith("/coins/markets"):
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            page = int(params.get("page", "1"))
            name = FIXTURES / "coingecko" / f"markets_page{page}.json"
            body = name.read_bytes() if name.exists() else b"[]"
            kind = "application/json"
        elif path.startswith("/feeds/"):
            body = (FIXTURES / "rss" / path.removeprefix("/feeds/")).read_bytes()
            kind = "application/rss+xml"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def build(url: str) -> str:
    """The database from the samples; returns an API key."""
    reset_database(url)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    env = {
        **env_for(url),
        "COINGECKO_BASE_URL": f"{base}/api/v3",
        "COINGECKO_PAGES": "2",
        "COINGECKO_PER_PAGE": "50",
        "RSS_FEED_URLS": ",".join(f"{base}/feeds/{name}.rss" for name in FEEDS),
        "CSV_DROP_DIR": str(ROOT / "data" / "csv_drop"),
    }
    try:
        for source in ("coingecko", "csv", "rss"):
            subprocess.run(
                [PYTHON, "manage.py", "etl", "run", "--source", source, "--no-progress"],
                cwd=ROOT,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
    finally:
        server.shutdown()
    return new_api_key(url)


def etag(url: str) -> str:
    with urllib.request.urlopen(url) as answer:  # noqa: S310 (our local server)
        return answer.headers["ETag"]


def measure(base: str, key: str, seconds: int, rounds: int, script: Path) -> dict:
    auth = ["-H", f"Authorization: Token {key}"]
    plan: list[tuple[str, str, list[str]]] = [("floor", f"{base}/no-such-page", [])]
    for label, path, keyed, cold, _, _ in CASES:
        extra = auth if keyed else []
        plan.append((f"{label} warm" if cold else label, base + path, extra))
        if cold:
            plan.append((f"{label} cold", base + path, [*extra, "-s", str(script)]))
    plan.append(("304 /data?limit=10", f"{base}/data?limit=10", []))
    results: dict[str, list[dict]] = {name: [] for name, _, _ in plan}
    for round_ in range(rounds):
        for name, url, extra in plan:
            if name.startswith("304"):
                extra = ["-H", f"If-None-Match: {etag(url)}"]
            results[name].append(wrk(url, seconds=seconds, extra=extra))
        print(f"round {round_ + 1}/{rounds} done", file=sys.stderr)
    return {
        name: {
            "rps": statistics.median(r["rps"] for r in runs),
            "low": min(r["rps"] for r in runs),
            "high": max(r["rps"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
        }
        for name, runs in results.items()
    }


IN_PROCESS = """
import json, os, sys, time
from django.test import Client
cases, key, n = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
client = Client()
rounds = 5
best = {}
plans = []
for name, path, keyed, mode in cases:
    headers = {"HTTP_AUTHORIZATION": f"Token {key}"} if keyed else {}
    if mode == "304":
        headers["HTTP_IF_NONE_MATCH"] = client.get(path)["ETag"]
    sep = "&" if "?" in path else "?"
    run = os.urandom(6).hex()  # cold: a key no earlier run has stored
    paths = [f"{path}{sep}cold={run}-{i}" if mode == "cold" else path for i in range(n + 20)]
    for p in paths[:20]:
        client.get(p, **headers)
    plans.append((name, paths[20:], headers))
for _ in range(rounds):  # alternating rounds; the CPU time of the process, the best round
    for name, paths, headers in plans:
        part = paths[: len(paths) // rounds]
        del paths[: len(part)]
        started = time.process_time()
        for p in part:
            client.get(p, **headers)
        ms = (time.process_time() - started) / len(part) * 1000
        best[name] = min(best.get(name, ms), ms)
print(json.dumps(best))
"""


def in_process(url: str, key: str, requests: int = 400) -> dict[str, float]:
    """CPU milliseconds per request through Django's test client, one at a time in one
    process (the best of 5 alternating rounds): the work each answer takes, free of the
    connection lottery of a wrk run and of what else the machine is doing."""
    cases = [("floor", "/no-such-page", False, "warm")]
    for label, path, keyed, cold, _, _ in CASES:
        cases.append((f"{label} warm" if cold else label, path, keyed, "warm"))
        if cold:
            cases.append((f"{label} cold", path, keyed, "cold"))
    cases.append(("304 /data?limit=10", "/data?limit=10", False, "304"))
    out = subprocess.run(
        [
            PYTHON,
            "-c",
            "import django; django.setup()\n" + IN_PROCESS,
            json.dumps(cases),
            key,
            str(requests),
        ],
        cwd=ROOT,
        env={
            **env_for(url),
            "DJANGO_SETTINGS_MODULE": "kasparro.settings",
            "PYTHONPATH": str(ROOT),
        },
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results: dict) -> str:
    floor = results["floor"]["rps"]
    targets = {"304 /data?limit=10": 0.8}
    for label, _, _, cold, warm_target, cold_target in CASES:
        targets[f"{label} warm" if cold else label] = warm_target
        if cold and cold_target is not None:
            targets[f"{label} cold"] = cold_target
    lines = [
        "| endpoint | req/s (median) | low-high | p50 ms | x the floor | target | non-2xx/3xx "
        "| in-process ms | x the floor in-process |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    floor_ms = results["floor"].get("ms")
    for name, r in results.items():
        fraction = r["rps"] / floor
        target = targets.get(name)
        mark = "" if target is None else (f"≥ {target}" + (" ✓" if fraction >= target else " ✗"))
        lines.append(
            f"| {name} | {r['rps']:,.0f} | {r['low']:,.0f}-{r['high']:,.0f} | {r['p50_ms']:.2f} "
            f"| {fraction:.2f} | {mark} "
            f"| {r['errors']} | {r.get('ms', 0):.2f} "
            f"| {floor_ms / r['ms'] if r.get('ms') else 0:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="keep the database of a last run")
    parser.add_argument(
        "--in-process-only", action="store_true", help="only the in-process column (no wrk)"
    )
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    if not url.startswith("postgres") or not os.environ.get("REDIS_URL"):
        sys.exit("DATABASE_URL (PostgreSQL) and REDIS_URL are needed: the figures are theirs")
    key_file = Path(tempfile.gettempdir()) / "kasparro-floor-key"
    if args.reuse and key_file.exists():
        key = key_file.read_text().strip()
    else:
        key = build(url)
        key_file.write_text(key)
    if args.in_process_only:
        print(json.dumps(in_process(url, key)))
        return
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "cold.lua"
        script.write_text(COLD_SCRIPT)
        with gunicorn(env_for(url)) as base:  # 2 workers, deploy/gunicorn.conf.py
            wrk(f"{base}/data?limit=10", seconds=2)  # every worker warmed up
            results = measure(base, key, args.seconds, args.rounds, script)
    for name, ms in in_process(url, key).items():
        results[name]["ms"] = ms
    print(table(results))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
