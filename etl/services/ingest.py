"""One run of one source: the page-transaction flow of the design.

    claim (heartbeat-kept, etl/services/claim.py) ─► dead runs of the source failed ─►
    Run(running) ─► for each page, in ONE transaction:
        raw payload kept · items normalized and resolved · bad items quarantined ·
        good items upserted · checkpoint and run counters advanced · claim proved (fencing)
    ─► Run(success | partial | failed), claim released

A page is the unit of atomicity. A failure rolls back the page in flight and nothing else:
the checkpoint keeps the last committed cursor and the run is recorded as failed with the
counts of the pages that did commit. A page whose transaction met a lost database connection
is retried on a new one (the rollback left the checkpoint where it was). Fetching and
normalizing (pure work) run one page ahead in a helper thread, overlapping with the database
work of the current page.

Long (about 550 lines) because it still holds every stage of a run; its split into extract,
transform, load and run-lifecycle modules is issue 12.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import functools
import gc
import logging
import queue
import random
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)
from django.utils import timezone

from crypto.models import Asset
from etl.exceptions import ItemError, LeaseLostError, SourcePaused
from etl.faults import FaultPlan
from etl.services.claim import SourceClaim
from etl.services.drift import (
    DriftContext,
    Triage,
    drift_context_load,
    drift_record,
    drift_triage,
    source_pause,
    source_policy_get,
)
from etl.services.identity import IdentityResolver
from etl.services.loaders import LoadResult, articles_upsert, copy_line_tail, quotes_upsert
from etl.services.mentions import MentionMatcher
from etl.services.reaper import runs_fail_abandoned
from etl.services.state import (
    checkpoint_advance,
    checkpoint_get,
    content_hash,
    quarantine_add,
    raw_record_store,
    upstream_counts_add,
)
from etl.sources import build_source
from etl.sources.base import Page, Source
from kasparro.core.logging import log_context
from runs.anomaly import run_score_store
from runs.models import Run
from runs.services import run_finish, run_page_committed, run_skip, run_start

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[dict], None]


@dataclasses.dataclass
class PreparedPage:
    number: int
    page: Page
    good: list[tuple[Any, Any]]  # (raw item, normalized item)
    bad: list[tuple[Any, str, str]]  # (raw item, reason code, reason)
    raw_hash: str = ""
    raw_body: bytes | None = None  # zlib-compressed
    tails: list[str] = dataclasses.field(default_factory=list)  # market: COPY line tails
    triage: Triage | None = None


class RunSeen:
    """What a run loaded, kept small: the newest price per asset and the newest data time."""

    def __init__(self) -> None:
        self.prices: dict[int, tuple[dt.datetime, Any]] = {}
        self.newest: dt.datetime | None = None

    def add_quotes(self, rows: list[tuple[int, Any, str]]) -> None:
        prices = self.prices
        for asset_id, item, _ in rows:
            known = prices.get(asset_id)
            if known is None or item.observed_at >= known[0]:
                prices[asset_id] = (item.observed_at, item.price_usd)
            if self.newest is None or item.observed_at > self.newest:
                self.newest = item.observed_at

    def add_articles(self, items: list[Any]) -> None:
        for item in items:
            if item.published_at and (self.newest is None or item.published_at > self.newest):
                self.newest = item.published_at

    def store(self, run_id: uuid.UUID) -> None:
        """Record it on the run, for comparisons and freshness."""
        slugs = dict(Asset.objects.filter(pk__in=list(self.prices)).values_list("pk", "slug"))
        prices = {
            slugs[asset_id]: (str(price) if price is not None else None)
            for asset_id, (_, price) in self.prices.items()
            if asset_id in slugs
        }
        lag = (timezone.now() - self.newest).total_seconds() if self.newest else None
        Run.objects.filter(pk=run_id).update(asset_prices=prices or None, freshness_lag_seconds=lag)


def _prepare(
    source: Source, cursor: dict, plan: FaultPlan, drift: DriftContext | None
) -> Iterator[PreparedPage]:
    pages = source.fetch(cursor)
    number = 0
    try:
        while True:
            number += 1
            plan.check(source.name, "fetch", number)
            try:
                page = next(pages)
            except StopIteration:
                return
            plan.check(source.name, "parse", number)
            plan.check(source.name, "normalize", number)
            good, bad, triage = prepare_items(source, page.items, drift)
            prepared = PreparedPage(number, page, good, bad, triage=triage)
            if source.kind == "market":
                prepared.tails = [copy_line_tail(item) for _, item in good]
            if page.items:
                prepared.raw_hash = content_hash(page.payload, page.raw_body)
                if page.raw_body is not None:
                    prepared.raw_body = zlib.compress(page.raw_body.encode(), 1)
            yield prepared
    finally:
        pages.close()


def prepare_items(
    source: Source, items: list[Any], drift: DriftContext | None
) -> tuple[list[tuple[Any, Any]], list[tuple[Any, str, str]], Triage | None]:
    """Pure: drift triage, then normalization of the items drift does not hold back.
    Returns (raw item, normalized) pairs, (raw item, code, reason) triples, and the triage."""
    mapped, triage = items, None
    if drift is not None and items:
        mapped, triage = drift_triage(source, items, drift)
    held = triage.held if triage else {}
    bad = [(items[index], "schema_drift", reason) for index, reason in sorted(held.items())]
    keep = [index for index in range(len(items)) if index not in held]
    good = []
    results = _normalize_all(source, [mapped[index] for index in keep] if held else mapped)
    for index, (_, result) in zip(keep, results, strict=True):
        if isinstance(result, ItemError):
            bad.append((items[index], result.code, result.reason))
        else:
            good.append((items[index], result))
    return good, bad, triage


def _normalize_all(source: Source, items: list[Any]) -> Iterator[tuple[Any, Any]]:
    """Every item comes out, normalized or with an error: a normalizer bug loses nothing."""
    position = 0
    while position < len(items):
        try:
            for item, result in source.normalize_many(items[position:]):
                position += 1
                yield item, result
        except Exception as exc:
            yield items[position], ItemError("normalize_error", f"{type(exc).__name__}: {exc}")
            position += 1


_DONE = object()


def _read_ahead(iterator: Iterator[PreparedPage], depth: int) -> Iterator[PreparedPage]:
    """Run `iterator` in a helper thread, `depth` pages ahead of the consumer."""
    if depth <= 0:
        yield from iterator
        return
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: object) -> bool:
        """Hand a value to the consumer unless it has gone away."""
        while not stop.is_set():
            try:
                buffer.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for prepared in iterator:
                if not put(prepared):
                    return
            put(_DONE)
        except BaseException as exc:
            put(exc)
        finally:
            iterator.close()

    context = contextvars.copy_context()  # log lines from the thread keep the run's tags
    thread = threading.Thread(
        target=context.run, args=(produce,), name="etl-read-ahead", daemon=True
    )
    thread.start()
    try:
        while True:
            got = buffer.get()
            if got is _DONE:
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()
        thread.join(timeout=30)


@contextlib.contextmanager
def _tuned_for_throughput() -> Iterator[None]:
    """Interpreter settings for the length of a run, restored after. Both measured on a
    1,000,000-row CSV (tests/benchmarks/csv_ingest.py):

    - fewer cyclic-GC passes: a page allocates hundreds of thousands of short-lived objects,
      none in cycles, and with the default thresholds the collector kept rescanning every live
      object of the process (a third of the run). Long-lived objects are frozen out of scans.
    - a shorter GIL switch interval: the database thread gives up the GIL at every round trip
      and then waited up to 5 ms for the read-ahead thread to hand it back (another third).
    """
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], 50_000), *thresholds[1:])
    sys.setswitchinterval(min(interval, 0.0002))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def ingest_run(
    *,
    source_name: str,
    trigger: str,
    parent_run_id: uuid.UUID | str | None = None,
    task_id: str = "",
    faults: FaultPlan | None = None,
    progress: ProgressCallback | None = None,
) -> Run:
    """Run one source to completion (or failure) and return its finished Run."""
    source = build_source(source_name)
    name = source.name
    plan = faults if faults is not None else FaultPlan.parse(settings.ETL_FAULTS)
    run_id = uuid.uuid4()

    policy = source_policy_get(source=name)
    if policy.paused:
        return run_skip(
            source=name,
            trigger=trigger,
            task_id=task_id,
            parent_id=parent_run_id,
            reason=f"source paused: {policy.paused_reason or 'by an operator'}",
        )
    claim = SourceClaim(source=name, holder=run_id, task_id=task_id)
    if not claim.acquire():
        holder = claim.busy_holder
        logger.info("source busy, run skipped", extra={"source": name, "holder": str(holder)})
        return run_skip(
            source=name,
            trigger=trigger,
            task_id=task_id,
            parent_id=parent_run_id,
            reason=f"another run of {name} is in progress (run {holder})",
        )
    run = None
    try:
        # Holding the claim proves any other running run of the source dead: this run is
        # their recovery, and links to the newest of them when nothing else asked for it.
        dead = runs_fail_abandoned(source=name, except_run=run_id)
        drift = drift_context_load(source=name)
        seen = RunSeen()
        cursor = checkpoint_get(source=name)
        run = run_start(
            run_id=run_id,
            source=name,
            trigger=trigger,
            parent_id=parent_run_id or dead,
            task_id=task_id,
            checkpoint_before=cursor,
        )
        logger.info(
            "run started", extra={"run_id": str(run_id), "source": name, "trigger": trigger}
        )
        with _tuned_for_throughput(), log_context(run_id=str(run_id), source=name):
            status, message = _execute(source, claim, cursor, plan, progress, drift, seen)
        seen.store(run_id)
        run = run_finish(run_id=run_id, status=status, message=message)
        _score(run_id)
        logger.info("run finished", extra={"run_id": str(run_id), "source": name, "status": status})
        return run
    except BaseException as exc:
        logger.exception("run failed", extra={"run_id": str(run_id), "source": name})
        if run is None:
            raise
        try:
            run = database_retrying(
                functools.partial(run_finish, run_id=run_id, status=Run.Status.FAILED, error=exc)
            )
        except Exception:
            logger.exception("could not record the failure", extra={"run_id": str(run_id)})
            raise exc from None
        _score(run_id)
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt, SystemExit: recorded as failed, then honoured
        return run
    finally:
        client = getattr(source, "client", None)
        if client is not None and client.stats:
            try:
                upstream_counts_add(source=name, stats=dict(client.stats))
            except Exception:
                logger.exception("could not record upstream counters", extra={"source": name})
        try:
            database_retrying(claim.release)
        except Exception:
            logger.exception("could not release the claim; it will expire", extra={"source": name})


def _score(run_id: uuid.UUID) -> None:
    """Anomaly findings against the source's history; never fails the run."""
    try:
        run_score_store(run_id=run_id)
    except Exception:
        logger.exception("could not score the run", extra={"run_id": str(run_id)})


DATABASE_ATTEMPTS = 6  # waits of about 0.5, 1, 2, 4 and 8 s: a restart of a few seconds


def database_retrying(
    write: Callable[[], Any], *, on_retry: Callable[[], None] | None = None
) -> Any:
    """Run `write` (a transaction of its own), again on a new connection when the database
    was lost (a restart, a failover), with exponential backoff and equal jitter. Inside a
    caller's transaction nothing can be retried: the error is raised as it is."""
    for attempt in range(DATABASE_ATTEMPTS):
        try:
            return write()
        except (OperationalError, InterfaceError):
            if attempt == DATABASE_ATTEMPTS - 1 or connection.in_atomic_block:
                raise
            pause = min(8.0, 0.5 * 2**attempt)
            pause = random.uniform(pause / 2, pause)  # noqa: S311 - jitter, not security
            logger.warning(
                "database unavailable; retrying", extra={"attempt": attempt + 1, "pause": pause}
            )
            connection.close()
            time.sleep(pause)
            if on_retry is not None:
                on_retry()
    raise AssertionError("unreachable")


class _PageWriter:
    """Commits prepared pages of one run; keeps the per-run caches the page transactions fill
    (identities, mentions), dropped whenever a transaction rolls back."""

    def __init__(self, source: Source, claim: SourceClaim, plan: FaultPlan, seen: RunSeen) -> None:
        self.source, self.claim, self.plan, self.seen = source, claim, plan, seen
        self.reset()

    def reset(self) -> None:
        """Forget what rolled-back transactions taught the caches (assets they created)."""
        kind = self.source.kind
        self.resolver = IdentityResolver(source=self.source.name) if kind == "market" else None
        self.matcher = MentionMatcher.from_database() if kind == "news" else None

    def commit(self, prepared: PreparedPage) -> tuple[LoadResult, list[tuple[Any, str, str]]]:
        """One page in one transaction; retried from the checkpoint (which the rollback left
        where it was) if the database was lost on the way."""
        if self.claim.lost:
            raise LeaseLostError(f"lost the claim on {self.source.name}: another run took over")
        if not connection.in_atomic_block:
            close_old_connections()  # a connection a database restart killed is replaced here

        def write() -> tuple[LoadResult, list[tuple[Any, str, str]]]:
            with transaction.atomic():
                return _commit_page(self, prepared)

        return database_retrying(write, on_retry=self.reset)


def _execute(
    source: Source,
    claim: SourceClaim,
    cursor: dict,
    plan: FaultPlan,
    progress: ProgressCallback | None,
    drift: DriftContext | None,
    seen: RunSeen,
) -> tuple[str, str]:
    name, run_id = source.name, claim.holder
    writer = _PageWriter(source, claim, plan, seen)
    part_errors: list[str] = []
    answered = quarantined = 0

    depth = settings.ETL_READ_AHEAD_PAGES
    for prepared in _read_ahead(_prepare(source, cursor, plan, drift), depth):
        page = prepared.page
        if page.error:
            part_errors.append(page.error)
            logger.warning(
                "part of the source failed",
                extra={"run_id": str(run_id), "source": name, "error": page.error},
            )
        else:
            answered += 1  # a page, or a feed or file that answered (304 included)
        if not page.error and not page.not_modified and (page.items or page.cursor != cursor):
            result, bad = writer.commit(prepared)
            cursor = page.cursor
            quarantined += len(bad)
            if prepared.triage and prepared.triage.pause_reason:
                source_pause(source=name, reason=prepared.triage.pause_reason)
                raise SourcePaused(prepared.triage.pause_reason)
            logger.info(
                "page committed",
                extra={
                    "run_id": str(run_id),
                    "source": name,
                    "page": page.ref,
                    "inserted": result.inserted,
                    "updated": result.updated,
                    "unchanged": result.unchanged,
                    "quarantined": len(bad),
                },
            )
        if progress:
            progress(
                {
                    "page": page.ref,
                    "items": len(page.items),
                    "error": page.error,
                    "not_modified": page.not_modified,
                }
            )

    # Every part answered: success; some did: partial; none did: failed.
    if part_errors and not answered:
        return Run.Status.FAILED, "; ".join(part_errors)
    if part_errors or quarantined:
        notes = list(part_errors)
        if quarantined:
            notes.append(f"{quarantined} item(s) quarantined")
        return Run.Status.PARTIAL, "; ".join(notes)
    return Run.Status.SUCCESS, ""


def _commit_page(
    writer: _PageWriter, prepared: PreparedPage
) -> tuple[LoadResult, list[tuple[Any, str, str]]]:
    """Everything a page writes, in the caller's transaction; the claim proved last."""
    source, plan, run_id = writer.source, writer.plan, writer.claim.holder
    name, page = source.name, prepared.page
    raw = None
    if page.items:
        raw = raw_record_store(
            source=name,
            payload=page.payload,
            digest=prepared.raw_hash,
            body=prepared.raw_body,
            item_count=len(page.items),
            page_ref=page.ref,
            run_id=run_id,
        )
    bad = list(prepared.bad)
    drift_findings = 0
    if prepared.triage is not None:
        drift_findings = drift_record(
            source=name, run_id=run_id, triage=prepared.triage, items=page.items
        )
    plan.check(name, "load", prepared.number)
    result = load_good(
        source, prepared.good, prepared.tails, bad, writer.resolver, writer.matcher, writer.seen
    )
    quarantine_add(source=name, run_id=run_id, raw_record_id=raw.pk if raw else None, entries=bad)
    plan.check(name, "checkpoint", prepared.number)
    checkpoint_advance(source=name, cursor=page.cursor, run_id=run_id)
    run_page_committed(
        run_id=run_id,
        cursor=page.cursor,
        items_fetched=len(page.items),
        items_inserted=result.inserted,
        items_updated=result.updated,
        items_unchanged=result.unchanged,
        items_quarantined=len(bad),
        drift_findings=drift_findings,
    )
    writer.claim.prove()  # fencing: the page commits only while the claim is ours
    return result, bad


def load_good(
    source: Source,
    good: list[tuple[Any, Any]],
    tails: list[str],
    bad: list[tuple[Any, str, str]],
    resolver: IdentityResolver | None,
    matcher: MentionMatcher | None,
    seen: RunSeen | None = None,
) -> LoadResult:
    """Resolve and upsert normalized items; identity failures are appended to `bad`."""
    if resolver is None:
        articles = [n for _, n in good]
        if seen is not None:
            seen.add_articles(articles)
        return articles_upsert(items=articles, matcher=matcher)
    if not tails:
        tails = [copy_line_tail(item) for _, item in good]
    asset_ids, errors = resolver.resolve_keys([item for _, item in good])
    rows = []
    for (raw_item, item), tail in zip(good, tails, strict=True):
        asset_id = asset_ids.get(item.source_key)
        if asset_id is None:
            error = errors[item.source_key]
            bad.append((raw_item, error.code, error.reason))
        else:
            rows.append((asset_id, item, tail))
    result = quotes_upsert(source=source.name, rows=rows)
    if seen is not None:
        seen.add_quotes(rows)
    return result
