"""The quote loader: resolves each market item to its canonical asset, then upserts quotes
idempotently with honest inserted/updated/unchanged counts.

A page's quotes are grouped by source key ahead, in the read-ahead thread (`QuoteBatch`): the
database thread resolves each distinct key once (about a thousand per 10,000-row CSV page) and
touches no row in Python. On PostgreSQL the batch's COPY text goes into a staging table and SQL
does the rest (`etl.pipeline.load.quotes_postgres`). Elsewhere (SQLite in zero-config mode) the
same semantics are reached through the ORM. Both run inside the caller's page transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

from django.db import connection
from django.utils import timezone

from crypto.models import LatestQuote, Quote
from etl.pipeline.identity import IdentityResolver
from etl.pipeline.load.base import Bad, Good, LoadResult, RunSeen
from etl.pipeline.load.quotes_postgres import QUOTE_VALUES, quotes_upsert_postgres
from etl.sources.base import MarketItem
from kasparro.core.catalogue import MARKET


@dataclasses.dataclass(slots=True)
class QuoteBatch:
    """A page's quotes grouped by key, built without the database.

    `firsts[k]` is key k's first item (what identity resolution reads), `counts[k]` its rows,
    `newest[k]` its newest row as (observed_at, row number, price). `copy` is the page as COPY
    lines `k, row number, observed_at, values…`: SQL joins k to the resolved asset and keeps
    the last row of an (asset, time) seen twice."""

    names: list[Any]  # the keys, in order of appearance
    firsts: list[MarketItem]
    counts: list[int]
    newest: list[tuple[dt.datetime, int, Decimal | None]]
    copy: str

    @classmethod
    def build(cls, items: list[MarketItem], keys: list[Any] | None = None) -> QuoteBatch:
        """Grouped by source key, or by `keys` (one per item) when given."""
        numbers: dict[Any, int] = {}
        names: list[Any] = []
        firsts: list[MarketItem] = []
        counts: list[int] = []
        newest: list[tuple[dt.datetime, int, Decimal | None]] = []
        lines = []
        for n, item in enumerate(items):
            name = item.source_key if keys is None else keys[n]
            k = numbers.get(name)
            if k is None:
                k = numbers[name] = len(firsts)
                names.append(name)
                firsts.append(item)
                counts.append(0)
                newest.append((item.observed_at, n, item.price_usd))
            counts[k] += 1
            if item.observed_at >= newest[k][0]:
                newest[k] = (item.observed_at, n, item.price_usd)
            lines.append(f"{k}\t{n}{copy_line_tail(item)}")
        return cls(names, firsts, counts, newest, "".join(lines))


class QuoteLoader:
    kind: ClassVar[str] = MARKET

    def __init__(self, *, source: str, seen: RunSeen | None = None) -> None:
        self.source, self.seen = source, seen
        self.reset()

    def reset(self) -> None:
        self.resolver = IdentityResolver(source=self.source)

    @staticmethod
    def pre_load(good: Good) -> QuoteBatch:
        return QuoteBatch.build([item for _, item in good])

    def load(self, good: Good, extras: Any, bad: Bad) -> LoadResult:
        batch = extras if isinstance(extras, QuoteBatch) else self.pre_load(good)
        asset_ids, errors = self.resolver.resolve_keys(batch.firsts)
        if errors:
            for raw_item, item in good:
                error = errors.get(item.source_key)
                if error is not None:
                    bad.append((raw_item, error.code, error.reason))
        resolved = [
            (k, asset_ids[item.source_key])
            for k, item in enumerate(batch.firsts)
            if item.source_key in asset_ids
        ]
        if connection.vendor == "postgresql":
            result = quotes_upsert_postgres(self.source, batch, resolved)
        else:
            result = _quotes_upsert_generic(
                self.source,
                [(asset_ids[i.source_key], i) for _, i in good if i.source_key in asset_ids],
            )
        if self.seen is not None:
            # Per asset, the page's newest row (the later row of a tie, as the load keeps it).
            best: dict[int, tuple[dt.datetime, int, Decimal | None]] = {}
            for k, asset_id in resolved:
                row = batch.newest[k]
                if asset_id not in best or row[:2] >= best[asset_id][:2]:
                    best[asset_id] = row
            for asset_id, (observed_at, _, price) in best.items():
                self.seen.add_price(asset_id, observed_at, price)
        return result


def copy_line_tail(item: MarketItem) -> str:
    """A quote's COPY line after its key and row number: pure work, done ahead in the
    read-ahead thread."""
    f = _copy_field
    return (
        f"\t{item.observed_at.isoformat()}\t{f(item.price_usd)}\t{f(item.market_cap)}\t"
        f"{f(item.volume_24h)}\t{f(item.price_change_24h)}\t{f(item.market_cap_rank)}\n"
    )


def _copy_field(value: object) -> str:
    return "\\N" if value is None else str(value)


def quotes_upsert(*, source: str, rows: list[tuple[int, MarketItem]]) -> LoadResult:
    """Upsert quotes whose assets are known, (asset id, item) pairs. The same asset and time
    twice is not an error: the last wins, the others count as unchanged."""
    if not rows:
        return LoadResult()
    if connection.vendor == "postgresql":
        batch = QuoteBatch.build([item for _, item in rows], [asset_id for asset_id, _ in rows])
        return quotes_upsert_postgres(source, batch, list(enumerate(batch.names)))
    return _quotes_upsert_generic(source, rows)


# --- Any database (SQLite) ----------------------------------------------------------------------


def _same(a: object, b: object) -> bool:
    """SQLite keeps decimals as floats: compare at that precision."""
    if isinstance(a, Decimal | float) and isinstance(b, Decimal | float):
        return float(a) == float(b)
    return a == b


def _quotes_upsert_generic(source: str, rows: list[tuple[int, MarketItem]]) -> LoadResult:
    unique: dict[tuple[int, dt.datetime], MarketItem] = {}
    for asset_id, item in rows:
        unique[(asset_id, item.observed_at)] = item
    now = timezone.now()
    asset_ids = sorted({asset_id for asset_id, _ in unique})
    times = sorted({observed_at for _, observed_at in unique})
    existing: dict[tuple[int, dt.datetime], Quote] = {}
    for start in range(0, len(asset_ids), 400):
        chunk = asset_ids[start : start + 400]
        for quote in Quote.objects.filter(source=source, asset_id__in=chunk, observed_at__in=times):
            existing[(quote.asset_id, quote.observed_at)] = quote

    new, changed = [], []
    for (asset_id, observed_at), item in unique.items():
        quote = existing.get((asset_id, observed_at))
        if quote is None:
            quote = Quote(
                asset_id=asset_id, source=source, observed_at=observed_at, ingested_at=now
            )
            _assign(quote, item)
            new.append(quote)
            existing[(asset_id, observed_at)] = quote
        elif not all(_same(getattr(quote, c), getattr(item, c)) for c in QUOTE_VALUES):
            _assign(quote, item)
            quote.ingested_at = now
            changed.append(quote)
    Quote.objects.bulk_create(new, batch_size=500)
    Quote.objects.bulk_update(changed, [*QUOTE_VALUES, "ingested_at"], batch_size=500)

    newest: dict[int, Quote] = {}
    for (asset_id, observed_at), quote in existing.items():
        if (asset_id, observed_at) in unique and (
            asset_id not in newest or observed_at > newest[asset_id].observed_at
        ):
            newest[asset_id] = quote
    _latest_upsert_generic(source, newest)
    return LoadResult(len(new), len(changed), len(rows) - len(new) - len(changed))


def _assign(target: object, item: MarketItem) -> None:
    for column in QUOTE_VALUES:
        setattr(target, column, getattr(item, column))


def _latest_upsert_generic(source: str, newest: dict[int, Quote]) -> None:
    current = {
        latest.asset_id: latest
        for latest in LatestQuote.objects.filter(source=source, asset_id__in=list(newest))
    }
    create, update = [], []
    for asset_id, quote in newest.items():
        latest = current.get(asset_id)
        if latest is None:
            latest = LatestQuote(asset_id=asset_id, source=source)
            create.append(latest)
        elif latest.observed_at > quote.observed_at or (
            latest.observed_at == quote.observed_at
            and all(_same(getattr(latest, c), getattr(quote, c)) for c in QUOTE_VALUES)
        ):
            continue
        else:
            update.append(latest)
        latest.observed_at = quote.observed_at
        _assign(latest, quote)
    LatestQuote.objects.bulk_create(create, batch_size=500)
    LatestQuote.objects.bulk_update(update, ["observed_at", *QUOTE_VALUES], batch_size=500)
