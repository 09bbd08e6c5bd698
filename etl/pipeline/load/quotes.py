"""The quote loader: resolves each market item to its canonical asset, then upserts quotes
idempotently with honest inserted/updated/unchanged counts.

A page's quotes are grouped by source key ahead, in the read-ahead thread (`QuoteBatch`): the
database thread resolves each distinct key once (a thousand in a 20,000-row page of the CSV
benchmark's file) and touches no row in Python. On PostgreSQL the batch's COPY text goes into
a staging table and SQL does the rest (`etl.pipeline.load.quotes_postgres`). Elsewhere (SQLite
in zero-config mode) the same semantics are reached through the ORM. Both run inside the
caller's page transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

from django.db import connection
from django.utils import timezone

from crypto.models import QUOTE_VALUES, LatestQuote, Quote
from etl.pipeline.identity import IdentityResolver
from etl.pipeline.load.base import Bad, Good, LoadResult, RunSeen
from etl.pipeline.load.quotes_postgres import quotes_upsert_postgres
from etl.sources.base import MarketItem
from kasparro.core.catalogue import MARKET


@dataclasses.dataclass(slots=True)
class QuoteBatch:
    """A page's quotes grouped by key, built without the database.

    `names[k]` is key k (a source key, or an asset id), `firsts[k]` its first item (what
    identity resolution reads) and `counts[k]` its rows. `copy` is the page as COPY lines
    `k, position, observed_at, values…` sorted by key and time, one line per (key, time): the
    last row of the page wins. `lasts[k]` is the position of key k's newest line and
    `newest[k]` that line's (observed_at, price)."""

    names: list[Any]
    firsts: list[MarketItem]
    counts: list[int]
    lasts: list[int]
    newest: list[tuple[dt.datetime, Decimal | None]]
    copy: str

    @classmethod
    def build(cls, items: list[MarketItem], keys: list[Any] | None = None) -> QuoteBatch:
        """Grouped by source key, or by `keys` (one per item) when given."""
        numbers: dict[Any, int] = {}
        names: list[Any] = []
        firsts: list[MarketItem] = []
        counts: list[int] = []
        last: dict[tuple[int, dt.datetime], int] = {}  # (k, time) -> its last row
        for n, item in enumerate(items):
            name = item.source_key if keys is None else keys[n]
            k = numbers.get(name)
            if k is None:
                k = numbers[name] = len(firsts)
                names.append(name)
                firsts.append(item)
                counts.append(0)
            counts[k] += 1
            last[(k, item.observed_at)] = n
        lasts = [0] * len(firsts)
        newest: list[Any] = [None] * len(lasts)  # every key gets its own below
        lines = []
        for position, ((k, observed_at), n) in enumerate(sorted(last.items())):
            item = items[n]
            lines.append(f"{k}\t{position}{copy_line_tail(item)}")
            lasts[k], newest[k] = position, (observed_at, item.price_usd)
        return cls(names, firsts, counts, lasts, newest, "".join(lines))

    @classmethod
    def by_asset(cls, items: list[MarketItem], asset_ids: dict[str, int]) -> QuoteBatch:
        """A page keyed by asset (its resolved items only): for when two resolved keys name
        the same asset, so that their rows are one series."""
        rows = [(asset_ids[i.source_key], i) for i in items if i.source_key in asset_ids]
        return cls.build([item for _, item in rows], [asset_id for asset_id, _ in rows])


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
        if len({asset_id for _, asset_id in resolved}) < len(resolved):
            # Two keys name one asset: its rows are one series, the page's last row wins.
            batch = QuoteBatch.by_asset([item for _, item in good], asset_ids)
            resolved = list(enumerate(batch.names))
        if connection.vendor == "postgresql":
            result = quotes_upsert_postgres(self.source, batch, resolved)
        else:
            rows = [(asset_ids[i.source_key], i) for _, i in good if i.source_key in asset_ids]
            result = _quotes_upsert_generic(self.source, rows)
        if self.seen is not None:
            for k, asset_id in resolved:
                self.seen.add_price(asset_id, *batch.newest[k])
        return result


def copy_line_tail(item: MarketItem) -> str:
    """A quote's COPY line after its key number and position: pure work, done ahead in the
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
