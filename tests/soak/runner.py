"""`run_soak`: the whole soak, from start-up to verdict, leaving nothing running behind it.

    start (private PostgreSQL + Redis, migrate, 20 s schedules, web, 2 workers, beat)
    -> warm-up (every source ingests once) -> chaos while the upstreams move and a client reads
    -> freeze (upstreams still, no faults) -> quiet period (every source succeeds again)
    -> /health -> beat stopped, in-flight runs drained -> checks -> report

Everything started is stopped by the cleanup callbacks of one ExitStack (process groups killed,
the private PostgreSQL and Redis destroyed): on success, on a failed check, on an error and on
Ctrl-C.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.services import postgres_missing, redis_missing
from tests.soak import check
from tests.soak.chaos import Chaos, now, plan
from tests.soak.db import Database
from tests.soak.probe import ApiProbe
from tests.soak.stack import Stack
from tests.soak.upstreams import ServedQuote, Upstreams

SOURCES = ["coingecko", "rss", "csv"]
WARM_UP_SECONDS = 20


class SoakUnavailable(RuntimeError):
    """The machine lacks what the soak needs (PostgreSQL server binaries, redis-server)."""


def _elapsed(since: float) -> str:
    return f"[{time.monotonic() - since:5.0f}s]"


def _wait(stack: Stack, seconds: float, until: Callable[[], bool] | None = None) -> bool:
    """Supervise the stack for up to `seconds`; True as soon as `until()` holds."""
    deadline = time.monotonic() + seconds
    while True:
        stack.supervise()
        if until is not None and until():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def _succeeded_since(db: Database, since: dt.datetime | None) -> set[str]:
    rows = db.rows(
        "SELECT DISTINCT source FROM runs_run WHERE status = 'success' AND started_at > %s",
        (since or dt.datetime(2000, 1, 1, tzinfo=dt.UTC),),
    )
    return {source for (source,) in rows}


def _final_epoch_stored(db: Database, upstreams: Upstreams) -> bool:
    final = upstreams.coingecko.final_epoch_quotes()
    rows = db.rows(
        "SELECT a.slug, q.observed_at, q.price_usd FROM crypto_quote q "
        "JOIN crypto_asset a ON a.id = q.asset_id "
        "WHERE q.source = 'coingecko' AND q.observed_at >= %s",
        (min(q.observed_at for q in final),),
    )
    return final <= {ServedQuote(*row) for row in rows}


def _health(base_url: str, attempts: int = 3) -> tuple[int, dict | None]:
    probe = ApiProbe(base_url)
    status, body = 0, None
    for _ in range(attempts):
        status, raw = probe.ask("/health")
        with contextlib.suppress(ValueError):
            body = json.loads(raw)
        if status == 200 and body and body.get("status") == "healthy":
            break
        time.sleep(1)
    return status, body


def run_soak(
    minutes: float,
    seed: int,
    *,
    workdir: Path | None = None,
    settle_seconds: float = 90,
    drain_seconds: float = 30,
    out: Callable[[str], None] = print,
) -> check.Report:
    """Run the soak for `minutes` of traffic and chaos (at least 1), then a quiet period of at
    most `settle_seconds` and a drain of in-flight runs of at most `drain_seconds`; return the
    report, printed through `out` with the progress lines. Logs stay in `workdir`."""
    if minutes < 1:
        raise ValueError("a soak needs at least 1 minute: warm-up, then every kind of fault")
    missing = postgres_missing() or redis_missing()
    if missing:
        raise SoakUnavailable(missing)
    began = time.monotonic()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="kasparro-soak-"))
    report = check.Report(seed=seed, minutes=minutes, workdir=str(workdir))
    with contextlib.ExitStack() as cleanup:
        upstreams = Upstreams(workdir / "drop", seed)
        cleanup.callback(upstreams.close)
        stack = Stack(workdir, upstreams.env(), out)
        cleanup.callback(stack.stop_all)
        stack.start()
        assert stack.pg is not None
        db = Database(stack.pg)
        cleanup.callback(db.close)
        probe = ApiProbe(stack.base_url)
        cleanup.callback(probe.stop)
        probe.start()
        report.schedules = stack.schedules

        traffic_start = time.monotonic()
        traffic_end = traffic_start + minutes * 60
        # The plan depends on the seed and the minutes only, not on how fast the stack warms.
        events = plan(random.Random(f"{seed}:plan"), minutes * 60 - WARM_UP_SECONDS)
        chaos = Chaos(stack, db, upstreams, random.Random(f"{seed}:chaos"), traffic_end)
        out(f"soak: {_elapsed(began)} stack up; warming up (every source ingests once)")
        _wait(stack, WARM_UP_SECONDS, lambda: _succeeded_since(db, None) >= set(SOURCES))
        chaos_start = time.monotonic()
        for offset, kind in events:
            _wait(stack, chaos_start + offset - time.monotonic())
            # A fault that waited for its moment (a running run to kill) may end up late: the
            # first of each kind is still injected, later picks are dropped at the end.
            if time.monotonic() >= traffic_end and kind in {e.kind for e in chaos.events}:
                break
            event = chaos.inject(kind)
            out(f"soak: {_elapsed(began)} {event.kind}: {event.detail}")
        _wait(stack, traffic_end - time.monotonic())

        upstreams.freeze()
        freeze_at = now()
        out(f"soak: {_elapsed(began)} upstreams frozen; quiet (at most {settle_seconds:.0f}s)")
        settled = _wait(
            stack,
            settle_seconds,
            lambda: (
                _succeeded_since(db, freeze_at) >= set(SOURCES)
                and _final_epoch_stored(db, upstreams)
            ),
        )
        out(f"soak: {_elapsed(began)} {'settled' if settled else 'did not settle'}; checking")
        health = _health(stack.base_url)

        # Beat stopped, so no new run starts; the ones in flight may finish (bounded).
        stack.processes["beat"].stop()
        snapshots: list[check.Snapshot] = []

        def drained() -> bool:
            snapshots.append(check.runs_and_claims(db))
            running, held = snapshots[-1]
            return not running and not held

        _wait(stack, drain_seconds, drained)
        probe.stop()

        report.events = chaos.events
        report.api_answers = dict(probe.answers)
        report.upstream_answers = {
            "coingecko": dict(upstreams.coingecko.answers),
            "feeds": dict(upstreams.feeds.answers),
        }
        report.exits = list(stack.exits)
        report.checks = [
            check.check_settled(db, freeze_at, SOURCES),
            check.check_feeds(db, upstreams, report),
            check.check_csv(db, upstreams, report),
            check.check_coingecko(db, upstreams, report),
            check.check_runs_and_leases(db, report, snapshots[-1]),
            check.check_recovery(db, chaos.events, report),
            check.check_health(*health),
            check.check_api(probe.bad, chaos.database_down_windows()),
            check.check_exits(stack.exits),
            check.check_chaos(chaos.events),
        ]
        out(f"soak: {_elapsed(began)} stopping the stack")
    report.wall_seconds = time.monotonic() - began
    out(report.render())
    return report
