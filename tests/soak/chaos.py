"""The soak's chaos: a seeded plan of faults, bounded in number and spaced so the stack can
recover, and the code that injects each kind and records what it hit.

Kinds: SIGKILL a pool process running a run; SIGKILL a whole worker node (and its pool) then
start it again; SIGKILL beat then start it again; restart Redis; restart PostgreSQL (fast; the
down window is recorded, it is where a 503 is the right answer); a 429 storm on CoinGecko with
`Retry-After: 2`; a 5xx burst on CoinGecko or the feeds.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import socket
import time
from dataclasses import dataclass, field

from tests.soak.db import Database
from tests.soak.stack import WORKERS, Stack
from tests.soak.upstreams import Upstreams
from tests.soak.upstreams.common import Window

KINDS = (
    "kill_pool",
    "kill_worker",
    "kill_beat",
    "restart_redis",
    "restart_postgres",
    "storm_429",
    "burst_5xx",
)
UPSTREAM_FAULTS = ("storm_429", "burst_5xx")
# A long soak spaces faults this far apart (seconds); a short one spreads every kind evenly.
LONG_GAP = (20.0, 45.0)
MAX_EVENTS = 60
# Upstream faults wait this long for a request to meet (every source asks every 20 s).
FAULT_PATIENCE = 25.0


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class KilledRun:
    run_id: str
    source: str
    at: dt.datetime
    pid: int


@dataclass
class Event:
    kind: str
    at: dt.datetime
    ended: dt.datetime | None = None
    detail: str = ""
    killed: list[KilledRun] = field(default_factory=list)
    injected: bool = True  # False when the fault could not be injected (reason in `detail`)
    window: Window | None = None  # an upstream fault: when it opened, how many answers it hit

    @property
    def hit(self) -> bool:
        """Injected, and for an upstream fault, met by at least one request."""
        return self.injected and (self.window is None or self.window.hits > 0)


def plan(rng: random.Random, seconds: float) -> list[tuple[float, str]]:
    """(offset in seconds from the start of the chaos, kind), in order; a pure function of the
    seed and the length of the chaos.

    Every kind comes once first. The ones that need a healthy stack to bite lead: upstream
    faults wait for a request to meet them, the kill of a run for a running one (a process
    kill may stall a source for the rest of a short soak if recovery is broken); the rest
    follow in a seeded order. A short soak spreads them evenly and stops there; a long one
    goes on with seeded picks, 20-45 s apart, at most MAX_EVENTS in all."""
    first = list(UPSTREAM_FAULTS)
    rng.shuffle(first)
    rest = [kind for kind in KINDS if kind not in (*UPSTREAM_FAULTS, "kill_pool")]
    rng.shuffle(rest)
    order = [*first, "kill_pool", *rest]
    if seconds < LONG_GAP[1] * (len(KINDS) + 1):
        even = seconds / (len(KINDS) + 1)
        return [(even * (i + 1 + rng.uniform(-0.2, 0.2)), kind) for i, kind in enumerate(order)]
    events: list[tuple[float, str]] = []
    offset = rng.uniform(*LONG_GAP)
    while offset < seconds - 5 and len(events) < MAX_EVENTS:
        kind = order[len(events)] if len(events) < len(order) else rng.choice(KINDS)
        events.append((offset, kind))
        offset += rng.uniform(*LONG_GAP)
    return events


class Chaos:
    """Injects one fault at a time into the stack and the upstreams, recording each."""

    def __init__(
        self,
        stack: Stack,
        db: Database,
        upstreams: Upstreams,
        rng: random.Random,
        until: float,
    ) -> None:
        self.stack, self.db, self.upstreams, self.rng = stack, db, upstreams, rng
        self.until = until  # monotonic end of the chaos: no wait for a moment runs past it
        self.events: list[Event] = []
        self.hostname = socket.gethostname()

    def inject(self, kind: str) -> Event:
        event = getattr(self, kind)()
        self.events.append(event)
        return event

    def database_down_windows(self) -> list[tuple[dt.datetime, dt.datetime]]:
        return [(e.at, e.ended or now()) for e in self.events if e.kind == "restart_postgres"]

    # --- helpers ----------------------------------------------------------------------------------

    def _patience(self, seconds: float) -> float:
        """How long to wait for the moment to inject: `seconds`, cut at the end of the chaos
        (a few seconds still, so a late first fault of its kind gets its chance)."""
        return max(3.0, min(seconds, self.until - time.monotonic()))

    def _running(self) -> list[tuple[str, str, int, str]]:
        """(run id, source, pid, worker node) of the runs running in our worker processes."""
        found = []
        rows = self.db.rows(
            "SELECT id::text, source, host FROM runs_run WHERE status = 'running' "
            "ORDER BY started_at"
        )
        for run_id, source, host in rows:
            hostname, _, pid = host.rpartition(":")
            if hostname != self.hostname or not pid.isdigit():
                continue
            node = self.stack.worker_of(int(pid))
            if node is not None:
                found.append((run_id, source, int(pid), node))
        return found

    def _wait_running(self, patience: float) -> list[tuple[str, str, int, str]]:
        deadline = time.monotonic() + patience
        while True:
            running = self._running()
            if running or time.monotonic() > deadline:
                return running
            time.sleep(0.1)  # CSV and RSS runs last a second or two: look often

    # --- the kinds --------------------------------------------------------------------------------

    def kill_pool(self) -> Event:
        patience = self._patience(25)
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            running = self._wait_running(patience=max(0.0, deadline - time.monotonic()))
            if not running:
                break
            run_id, source, pid, node = self.rng.choice(running)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue  # it ended between the query and the kill: pick again
            at = now()
            killed = [KilledRun(run_id, source, at, pid)]
            detail = f"{source} run {run_id[:8]} (pid {pid}, {node})"
            return Event("kill_pool", at, at, detail, killed)
        detail = f"no run was running for {patience:.0f}s"
        return Event("kill_pool", now(), detail=detail, injected=False)

    def kill_worker(self) -> Event:
        running = self._wait_running(patience=self._patience(8))
        nodes = sorted({node for *_, node in running}) or list(WORKERS)
        node = self.rng.choice(nodes)
        managed = self.stack.processes[node]
        managed.kill()
        at = now()
        killed = [KilledRun(r, s, at, pid) for r, s, pid, n in running if n == node]
        time.sleep(self.rng.uniform(2, 5))
        managed.start()
        runs = ", ".join(f"{k.source} run {k.run_id[:8]}" for k in killed) or "idle"
        return Event("kill_worker", at, now(), f"{node} ({runs}), started again", killed)

    def kill_beat(self) -> Event:
        managed = self.stack.processes["beat"]
        managed.kill()
        at = now()
        time.sleep(self.rng.uniform(1, 4))
        managed.start()
        return Event("kill_beat", at, now(), "beat SIGKILLed, started again")

    def restart_redis(self) -> Event:
        redis = self.stack.redis
        assert redis is not None
        how = self.rng.choice(("shutdown", "SIGKILL"))
        at = now()
        if how == "shutdown":
            redis.stop()
        else:
            redis.kill()
        time.sleep(self.rng.uniform(1, 3))
        redis.start()
        ended = now()
        return Event("restart_redis", at, ended, f"{how}, up again after {_seconds(at, ended)}")

    def restart_postgres(self) -> Event:
        assert self.stack.pg is not None
        at = now()
        self.stack.pg.restart()
        ended = now()
        self.db.close()
        return Event("restart_postgres", at, ended, f"fast restart, down {_seconds(at, ended)}")

    def _fault(self, kind: str, name: str, seconds: float) -> Event:
        """Arm a fault window and wait (bounded) for it to bite: a window no request meets
        would test nothing. `Event.window` keeps counting its hits."""
        window = self.upstreams.faults.arm(name, seconds)
        at = now()
        patience = self._patience(FAULT_PATIENCE)
        deadline = time.monotonic() + patience
        while window.hits == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        target = name.rsplit("_", 1)[0]
        if window.hits == 0:
            detail = f"{target}: no request came within {patience:.0f}s"
            return Event(kind, at, now(), detail, window=window)
        return Event(kind, at, now(), f"{target} for {seconds:.1f}s", window=window)

    def storm_429(self) -> Event:
        return self._fault("storm_429", "coingecko_429", self.rng.uniform(6, 10))

    def burst_5xx(self) -> Event:
        name = self.rng.choice(("coingecko_5xx", "feeds_5xx"))
        return self._fault("burst_5xx", name, self.rng.uniform(4, 8))


def _seconds(start: dt.datetime, end: dt.datetime) -> str:
    return f"{(end - start).total_seconds():.1f}s"
