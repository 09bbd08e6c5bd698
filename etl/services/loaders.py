"""Idempotent bulk upserts of a page's good items, with honest inserted/updated/unchanged counts.

Quotes on PostgreSQL take the fast path: one COPY into a temporary staging table, then one
`INSERT … ON CONFLICT DO UPDATE … WHERE IS DISTINCT FROM` that only touches rows whose values
changed, then one upsert of the latest-quote table. Elsewhere (SQLite in zero-config mode) the
same semantics are reached through the ORM. Both run inside the caller's page transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from crypto.models import Article, ArticleAsset, LatestQuote, Quote
from etl.services.mentions import MentionMatcher
from etl.sources.base import ArticleItem, MarketItem

# Batches at least this big try a plain INSERT before falling back to the upsert.
OPTIMISTIC_BATCH = 1000
QUOTE_VALUES = ("price_usd", "market_cap", "volume_24h", "price_change_24h", "market_cap_rank")


@dataclasses.dataclass
class LoadResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


def copy_line_tail(item: MarketItem) -> str:
    """A quote's COPY line without its asset id: pure work, done ahead in the read-ahead
    thread so the database thread only prepends the resolved id."""
    f = _copy_field
    return (
        f"\t{item.observed_at.isoformat()}\t{f(item.price_usd)}\t{f(item.market_cap)}\t"
        f"{f(item.volume_24h)}\t{f(item.price_change_24h)}\t{f(item.market_cap_rank)}\n"
    )


def _copy_field(value: object) -> str:
    return "\\N" if value is None else str(value)


QuoteRow = tuple[int, MarketItem, str]  # (asset id, item, COPY line tail)


def quotes_upsert(*, source: str, rows: list[QuoteRow]) -> LoadResult:
    """Upsert resolved quotes. The same coin twice in a page is not an error: last wins."""
    if not rows:
        return LoadResult()
    unique: dict[tuple[int, dt.datetime], QuoteRow] = {}
    for row in rows:
        unique[(row[0], row[1].observed_at)] = row
    if connection.vendor == "postgresql":
        result = _quotes_upsert_postgres(source, list(unique.values()))
    else:
        result = _quotes_upsert_generic(source, {k: r[1] for k, r in unique.items()})
    result.unchanged += len(rows) - len(unique)
    return result


# --- PostgreSQL ---------------------------------------------------------------------------------

_STAGE = "etl_stage_quote"
_STAGE_DDL = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (
    asset_id bigint NOT NULL,
    observed_at timestamptz NOT NULL,
    price_usd numeric,
    market_cap numeric,
    volume_24h numeric,
    price_change_24h numeric,
    market_cap_rank integer
) ON COMMIT DELETE ROWS
"""
_VALUES = ", ".join(QUOTE_VALUES)
_EXCLUDED = ", ".join(f"EXCLUDED.{c}" for c in QUOTE_VALUES)
# Both statements are built from module constants only; values travel as parameters.
_UPSERT_QUOTES = f"""
WITH written AS (
    INSERT INTO crypto_quote AS q (asset_id, source, observed_at, {_VALUES}, ingested_at)
    SELECT asset_id, %(source)s, observed_at, {_VALUES}, %(now)s FROM {_STAGE}
    ON CONFLICT (asset_id, source, observed_at) DO UPDATE SET
        {", ".join(f"{c} = EXCLUDED.{c}" for c in QUOTE_VALUES)}, ingested_at = EXCLUDED.ingested_at
    WHERE ({", ".join(f"q.{c}" for c in QUOTE_VALUES)}) IS DISTINCT FROM ({_EXCLUDED})
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written
"""  # noqa: S608
_INSERT_QUOTES = f"""
INSERT INTO crypto_quote (asset_id, source, observed_at, {_VALUES}, ingested_at)
SELECT asset_id, %(source)s, observed_at, {_VALUES}, %(now)s FROM {_STAGE}
"""  # noqa: S608
_UPSERT_LATEST = f"""
INSERT INTO crypto_latestquote AS l (asset_id, source, observed_at, {_VALUES})
SELECT DISTINCT ON (asset_id) asset_id, %(source)s, observed_at, {_VALUES} FROM {_STAGE}
ORDER BY asset_id, observed_at DESC
ON CONFLICT (asset_id, source) DO UPDATE SET
    observed_at = EXCLUDED.observed_at, {", ".join(f"{c} = EXCLUDED.{c}" for c in QUOTE_VALUES)}
WHERE l.observed_at < EXCLUDED.observed_at
   OR (l.observed_at = EXCLUDED.observed_at
       AND ({", ".join(f"l.{c}" for c in QUOTE_VALUES)}) IS DISTINCT FROM ({_EXCLUDED}))
"""  # noqa: S608


def _quotes_upsert_postgres(source: str, rows: list[QuoteRow]) -> LoadResult:
    buffer = "".join([f"{asset_id}{tail}" for asset_id, _, tail in rows])
    with connection.cursor() as cursor:
        cursor.execute(_STAGE_DDL)
        cursor.execute(f"TRUNCATE {_STAGE}")
        with cursor.cursor.copy(f"COPY {_STAGE} FROM STDIN") as copy:
            copy.write(buffer)
        params = {"source": source, "now": timezone.now()}
        inserted = updated = None
        if len(rows) >= OPTIMISTIC_BATCH:
            # Big batches (CSV drops) are new rows almost always: a plain INSERT skips the
            # speculative-insertion cost of ON CONFLICT (~40% measured). Any conflict rolls
            # back to the savepoint and takes the upsert below.
            try:
                with transaction.atomic():
                    cursor.execute(_INSERT_QUOTES, params)
                    inserted, updated = cursor.rowcount, 0
            except IntegrityError:
                inserted = None
        if inserted is None:
            cursor.execute(_UPSERT_QUOTES, params)
            inserted, updated = cursor.fetchone()
        cursor.execute(_UPSERT_LATEST, {"source": source})
    return LoadResult(inserted, updated, len(rows) - inserted - updated)


# --- Any database (SQLite) ----------------------------------------------------------------------


def _same(a: object, b: object) -> bool:
    """SQLite keeps decimals as floats: compare at that precision."""
    if isinstance(a, Decimal | float) and isinstance(b, Decimal | float):
        return float(a) == float(b)
    return a == b


def _quotes_upsert_generic(
    source: str, unique: dict[tuple[int, dt.datetime], MarketItem]
) -> LoadResult:
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
    return LoadResult(len(new), len(changed), len(unique) - len(new) - len(changed))


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


# --- Articles -----------------------------------------------------------------------------------

ARTICLE_FIELDS = ("title", "url", "summary", "author", "published_at", "content_hash")


def articles_upsert(*, items: list[ArticleItem], matcher: MentionMatcher) -> LoadResult:
    if not items:
        return LoadResult()
    unique: dict[tuple[str, str], ArticleItem] = {}
    for item in items:
        unique[(item.feed, item.guid)] = item
    feeds = sorted({feed for feed, _ in unique})
    guids = sorted({guid for _, guid in unique})
    existing = {(a.feed, a.guid): a for a in Article.objects.filter(feed__in=feeds, guid__in=guids)}
    now = timezone.now()
    new, changed = [], []
    for key, item in unique.items():
        article = existing.get(key)
        if article is None:
            article = Article(feed=item.feed, guid=item.guid, fetched_at=now)
            new.append(article)
        elif article.content_hash == item.content_hash:
            continue
        else:
            changed.append(article)
        for field in ARTICLE_FIELDS:
            setattr(article, field, getattr(item, field))
        # A feed that dates nothing: the article counts as published when we first saw it.
        article.published_at = item.published_at or article.published_at or now
        article.updated_at = now
    Article.objects.bulk_create(new, batch_size=500)
    Article.objects.bulk_update(changed, [*ARTICLE_FIELDS, "updated_at"], batch_size=500)

    touched = new + changed
    if touched:
        ArticleAsset.objects.filter(article__in=[a.pk for a in changed]).delete()
        ArticleAsset.objects.bulk_create(
            [
                ArticleAsset(article_id=article.pk, asset_id=asset_id, matched_by=matched_by)
                for article in touched
                for asset_id, matched_by in matcher.match(f"{article.title}\n{article.summary}")
            ],
            ignore_conflicts=True,
        )
    return LoadResult(len(new), len(changed), len(items) - len(new) - len(changed))
