"""The soak's verdict: checks made after the quiet period, straight on the private database
(psycopg, table names from the models), and the report that prints them.

Every check carries the evidence of its failure (what is missing, duplicated or unexpected,
with examples), so a red soak says why without opening a log.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from dataclasses import dataclass, field

from tests.soak.chaos import KINDS, Event
from tests.soak.db import Database
from tests.soak.probe import NO_ANSWER, BadAnswer
from tests.soak.stack import UnexpectedExit
from tests.soak.upstreams import ServedQuote, Upstreams

RECOVERY_BOUND = dt.timedelta(seconds=120)
DB_DOWN_GRACE = dt.timedelta(seconds=2)
EXAMPLES = 5


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Recovery:
    source: str
    run_id: str
    killed_at: dt.datetime
    seconds: float | None  # None: no run started after the kill ended success or partial


@dataclass
class Report:
    seed: int
    minutes: float
    workdir: str
    wall_seconds: float = 0.0
    schedules: dict = field(default_factory=dict)
    runs_by_status: dict[str, int] = field(default_factory=dict)
    runs_by_trigger: dict[str, int] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    api_answers: dict[tuple[str, int], int] = field(default_factory=dict)
    upstream_answers: dict[str, dict[int, int]] = field(default_factory=dict)
    rows: dict[str, tuple[int, int]] = field(default_factory=dict)  # source: (expected, stored)
    exits: list[UnexpectedExit] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    @property
    def injected(self) -> Counter[str]:
        """Faults by kind that happened (an upstream fault: that some request met)."""
        return Counter(e.kind for e in self.events if e.hit)

    def render(self) -> str:
        times = [r.seconds for r in self.recoveries if r.seconds is not None]
        recovery = f"{len(times)}/{len(self.recoveries)} killed runs resumed"
        if times:
            recovery += f"; max {max(times):.1f}s, median {statistics.median(times):.1f}s"
        not_injected = sum(not e.hit for e in self.events)
        schedules = ", ".join(
            f"{name} {_every(v['before'])} -> {_every(v['after'])}"
            for name, v in self.schedules.items()
        )
        lines = [
            f"===== soak report: seed {self.seed}, {self.minutes:g} min of traffic and chaos, "
            f"{self.wall_seconds:.0f}s in all =====",
            f"schedules   : {schedules}",
            f"runs        : {_counts(self.runs_by_status)}",
            f"  by trigger: {_counts(self.runs_by_trigger)}",
            f"chaos       : {_counts(self.injected)}"
            + (f" (planned but not injected: {not_injected})" if not_injected else ""),
            f"recovery    : {recovery}",
            f"api answers : {self._api()}",
            "upstreams   : "
            + "; ".join(
                f"{name} " + ", ".join(f"{status} x{n}" for status, n in sorted(answers.items()))
                for name, answers in self.upstream_answers.items()
            ),
            "rows        : "
            + "; ".join(f"{s} {exp} served, {got} stored" for s, (exp, got) in self.rows.items()),
        ]
        if self.exits:
            exits = ", ".join(f"{x.name} ({x.returncode}) {x.at:%H:%M:%S}" for x in self.exits)
            lines.append(f"exits       : {exits}")
        lines.append("events      :")
        for e in self.events:
            note = "" if e.hit else "(not injected) "
            hits = f" ({e.window.hits} faulty answers)" if e.window and e.window.hits else ""
            lines.append(f"  {e.at:%H:%M:%S} {e.kind:<16} {note}{e.detail}{hits}")
        lines.append("checks      :")
        lines += [f"  [ok] {c.name}" for c in self.checks if c.ok]
        for c in self.failed:
            lines.append(f"  [FAIL] {c.name}")
            lines += [f"         {line}" for line in c.detail.splitlines()]
        lines.append(f"logs        : {self.workdir}/logs")
        lines.append("RESULT      : " + ("PASS" if self.passed else f"FAIL ({len(self.failed)})"))
        return "\n".join(lines)

    def _api(self) -> str:
        by_endpoint: dict[str, list[str]] = {}
        for (endpoint, status), n in sorted(self.api_answers.items()):
            label = "no answer" if status == NO_ANSWER else str(status)
            by_endpoint.setdefault(endpoint, []).append(f"{label} x{n}")
        return "; ".join(f"{e} {', '.join(parts)}" for e, parts in by_endpoint.items()) or "-"


def _every(seconds: float | None) -> str:
    """An interval schedule in seconds; a crontab (the daily prune) has none."""
    return "crontab" if seconds is None else f"{seconds:g}s"


def _counts(counter: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "-"


def _show(item: object) -> str:
    """A key as a person reads it: `bitcoin 17:00:34.012 87645.1`."""
    if isinstance(item, ServedQuote):
        item = (item.coin, item.observed_at, item.price)
    if isinstance(item, tuple):
        return " ".join(_show(part) for part in item)
    if isinstance(item, dt.datetime):
        return item.astimezone(dt.UTC).strftime("%H:%M:%S.%f")[:-3]
    if isinstance(item, str) and item.startswith("http"):
        return item.rsplit("/", 1)[-1]  # a feed: its name is enough
    return str(item)


def _examples(items, limit: int = EXAMPLES) -> str:
    shown = sorted(_show(item) for item in items)
    more = f" (+{len(shown) - limit} more)" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def _set_check(name: str, expected: Counter, stored: Counter) -> Check:
    """Stored exactly once: no duplicate, nothing missing, nothing that was not served."""
    duplicates = {k: n for k, n in stored.items() if n > 1}
    missing = set(expected) - set(stored)
    extra = set(stored) - set(expected)
    problems = []
    if duplicates:
        shown = [f"{_show(key)} x{n}" for key, n in duplicates.items()]
        problems.append(f"{len(duplicates)} stored more than once: {_examples(shown)}")
    if missing:
        problems.append(f"{len(missing)} served but not stored: {_examples(missing)}")
    if extra:
        problems.append(f"{len(extra)} stored but never served: {_examples(extra)}")
    return Check(name, not problems, "\n".join(problems))


def check_feeds(db: Database, upstreams: Upstreams, report: Report) -> Check:
    served = Counter(upstreams.feeds.served_guids())
    stored = Counter(
        {
            (feed, guid): n
            for feed, guid, n in db.rows(
                "SELECT feed, guid, count(*) FROM crypto_article GROUP BY feed, guid"
            )
        }
    )
    report.rows["rss"] = (len(served), sum(stored.values()))
    return _set_check("rss: every served item stored exactly once", served, stored)


def _quotes(db: Database, source: str) -> list[tuple[str, dt.datetime, object]]:
    return db.rows(
        "SELECT a.slug, q.observed_at, q.price_usd FROM crypto_quote q "
        "JOIN crypto_asset a ON a.id = q.asset_id WHERE q.source = %s",
        (source,),
    )


def check_csv(db: Database, upstreams: Upstreams, report: Report) -> Check:
    written = upstreams.csv.written()
    rows = _quotes(db, "csv")
    report.rows["csv"] = (len(written), len(rows))
    check = _set_check(
        "csv: every written row stored exactly once",
        Counter((r.coin, r.observed_at) for r in written),
        Counter((slug, at) for slug, at, _ in rows),
    )
    prices = {(r.coin, r.observed_at): r.price for r in written}
    wrong = {(s, at, p) for s, at, p in rows if (s, at) in prices and prices[(s, at)] != p}
    if wrong:
        check.ok = False
        check.detail += f"\n{len(wrong)} stored with another price: {_examples(wrong)}"
    return check


def check_coingecko(db: Database, upstreams: Upstreams, report: Report) -> Check:
    served = upstreams.coingecko.served_quotes()
    final = upstreams.coingecko.final_epoch_quotes()
    rows = _quotes(db, "coingecko")
    stored = Counter(ServedQuote(slug, at, price) for slug, at, price in rows)
    keys = Counter((slug, at) for slug, at, _ in rows)
    report.rows["coingecko"] = (len(served), len(rows))
    problems = []
    duplicates = {k for k, n in keys.items() if n > 1}
    if duplicates:
        problems.append(f"{len(duplicates)} (coin, time) stored twice: {_examples(duplicates)}")
    never = set(stored) - served
    if never:
        problems.append(f"{len(never)} quotes stored but never served: {_examples(never)}")
    missing = final - set(stored)
    if missing:
        problems.append(
            f"{len(missing)}/{len(final)} coins of the final epoch missing: "
            f"{_examples(q.coin for q in missing)}"
        )
    name = "coingecko: no duplicate, every quote served, final epoch complete"
    return Check(name, not problems, "\n".join(problems))


Snapshot = tuple[list[tuple], list[tuple]]


def runs_and_claims(db: Database) -> Snapshot:
    """(runs still `running`, sources whose lease has a holder), at one moment."""
    running = db.rows(
        "SELECT source, id::text, host, started_at FROM runs_run WHERE status = 'running'"
    )
    held = db.rows(
        "SELECT source, holder::text, expires_at FROM etl_sourcelease WHERE holder IS NOT NULL"
    )
    return running, held


def check_runs_and_leases(db: Database, report: Report, snapshot: Snapshot) -> Check:
    """`snapshot` is the first moment of the drain with nothing running (or its last moment):
    a retry whose countdown ends later may start a run after it, rightly."""
    report.runs_by_status = dict(db.rows("SELECT status, count(*) FROM runs_run GROUP BY status"))
    report.runs_by_trigger = dict(
        db.rows("SELECT trigger, count(*) FROM runs_run GROUP BY trigger")
    )
    running, held = snapshot
    problems = [
        f"run {run_id} of {source} left running (host {host}, started {started:%H:%M:%S})"
        for source, run_id, host, started in running
    ]
    problems += [
        f"{source} held by {holder} until {expires:%H:%M:%S}" for source, holder, expires in held
    ]
    return Check("runs: none left running, no source held", not problems, "\n".join(problems))


def check_recovery(db: Database, events: list[Event], report: Report) -> Check:
    problems = []
    for event in events:
        for killed in event.killed:
            (finished,) = db.rows(
                "SELECT min(finished_at) FROM runs_run WHERE source = %s AND started_at > %s "
                "AND status IN ('success', 'partial')",
                (killed.source, killed.at),
            )[0]
            seconds = (finished - killed.at).total_seconds() if finished else None
            report.recoveries.append(Recovery(killed.source, killed.run_id, killed.at, seconds))
            if seconds is None or seconds > RECOVERY_BOUND.total_seconds():
                took = "never" if seconds is None else f"after {seconds:.0f}s"
                problems.append(
                    f"{killed.source} run {killed.run_id[:8]} killed at {killed.at:%H:%M:%S} "
                    f"({event.kind}): next success/partial run {took}"
                )
    name = f"recovery: every killed run followed by a finished run within {RECOVERY_BOUND.seconds}s"
    return Check(name, not problems, "\n".join(problems))


def check_api(bad: list[BadAnswer], windows: list[tuple[dt.datetime, dt.datetime]]) -> Check:
    """5xx (or no answer) only as a JSON 503 during a database-down window."""
    problems = []
    for answer in bad:
        in_window = any(
            answer.started <= end + DB_DOWN_GRACE and answer.ended >= start
            for start, end in windows
        )
        if in_window and answer.status == 503 and answer.is_json:
            continue
        status = "no answer" if answer.status == NO_ANSWER else str(answer.status)
        where = "during" if in_window else "outside"
        problems.append(
            f"{answer.started:%H:%M:%S} {answer.path} -> {status} {where} the database-down "
            f"window{'' if answer.is_json else ' (not JSON)'}: {answer.body[:160]}"
        )
    name = "api: no 5xx outside the database-down window, JSON 503 inside it"
    more = [f"(+{len(problems) - 10} more)"] if len(problems) > 10 else []
    return Check(name, not problems, "\n".join(problems[:10] + more))


def check_health(status: int, body: dict | None) -> Check:
    body = body or {}
    ok = status == 200 and body.get("status") == "healthy"
    detail = f"GET /health -> {status} {body.get('status')}: {body.get('reasons', body)}"
    return Check("health: /health answers 200 healthy", ok, "" if ok else detail)


def check_chaos(events: list[Event]) -> Check:
    missing = [kind for kind in KINDS if kind not in {e.kind for e in events if e.hit}]
    idle = [f"{e.kind} at {e.at:%H:%M:%S}: {e.detail}" for e in events if not e.hit]
    detail = "\n".join(([f"never injected: {', '.join(missing)}"] if missing else []) + idle)
    return Check("chaos: every kind of fault injected", not missing, detail)


def check_exits(exits: list[UnexpectedExit]) -> Check:
    detail = "\n".join(
        f"{x.name} exited {x.returncode} at {x.at:%H:%M:%S}:\n{x.last_words}" for x in exits
    )
    return Check("processes: none exited unless the chaos killed it", not exits, detail)


def check_settled(db: Database, freeze_at: dt.datetime, sources: list[str]) -> Check:
    """Every source had a successful run that started after the upstreams froze."""
    problems = []
    for source in sources:
        runs = db.rows(
            "SELECT status, trigger, error_message FROM runs_run WHERE source = %s "
            "AND started_at > %s ORDER BY started_at DESC",
            (source, freeze_at),
        )
        if any(status == "success" for status, _, _ in runs):
            continue
        seen = Counter(status for status, _, _ in runs)
        last = f"; last: {runs[0][0]} ({runs[0][1]}) {runs[0][2][:200]}" if runs else ""
        problems.append(f"{source}: no success since the freeze ({_counts(seen)}){last}")
    name = "quiet period: every source succeeded after the upstreams froze"
    return Check(name, not problems, "\n".join(problems))
