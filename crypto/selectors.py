"""Reads of market data and news, shaped for the API. Every query here is served by an index
(tests/benchmarks/api_load.py prints their EXPLAIN) and none scans the whole time series."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from django.db.models import Avg, Count, F, Max, Min, Prefetch, Q, QuerySet
from django.db.models.functions import TruncDay, TruncHour

from crypto.models import Article, ArticleAsset, Asset, LatestQuote, Quote, SourceAsset
from kasparro.core.catalogue import MARKET, source_names
from kasparro.core.paging import page_with_total

HISTORY_INTERVALS = ("raw", "hour", "day")


def latest_quote_list(
    *, sources: list[str] | None = None, symbol: str | None = None, name: str | None = None
) -> QuerySet[LatestQuote]:
    """Current price per asset and source, best ranked first."""
    qs = LatestQuote.objects.select_related("asset")
    if sources:
        qs = qs.filter(source__in=sources)
    if symbol:
        qs = qs.filter(asset__symbol=symbol.strip().upper())
    if name:
        qs = qs.filter(asset__name__icontains=name.strip())
    # NULLS LAST is PostgreSQL's default for ASC (so the index serves it); SQLite needs it said.
    return qs.order_by(F("market_cap_rank").asc(nulls_last=True), "asset_id", "source")


MARKET_ROW_FIELDS = (
    "id",
    "source",
    "asset__symbol",
    "asset__name",
    "asset__slug",
    "price_usd",
    "market_cap",
    "volume_24h",
    "price_change_24h",
    "market_cap_rank",
    "observed_at",
)


def latest_quote_page(
    qs: QuerySet[LatestQuote], *, offset: int, limit: int
) -> tuple[list[dict], int]:
    """A page of `latest_quote_list` as plain rows, the asset's fields joined in (`asset__slug`
    and the like), and the list's total: one query (a bounded set: one row per asset and
    source), no model instances."""
    return page_with_total(qs, offset=offset, limit=limit, fields=MARKET_ROW_FIELDS)


def asset_list(*, q: str | None = None, symbol: str | None = None) -> QuerySet[Asset]:
    qs = Asset.objects.all()
    if symbol:
        qs = qs.filter(symbol=symbol.strip().upper())
    if q:
        q = q.strip()
        qs = qs.filter(
            Q(slug__iexact=q) | Q(symbol__iexact=q) | Q(name__icontains=q) | Q(slug__icontains=q)
        )
    return qs.order_by("slug")


def asset_get(*, slug: str) -> Asset | None:
    return (
        Asset.objects.filter(slug=slug)
        .prefetch_related(
            Prefetch("identities", queryset=SourceAsset.objects.order_by("source", "key")),
            Prefetch("latest_quotes", queryset=LatestQuote.objects.order_by("source")),
        )
        .first()
    )


STEPS = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}
POINT_FIELDS = (
    "observed_at",
    "price_usd",
    "market_cap",
    "volume_24h",
    "price_change_24h",
    "market_cap_rank",
)


@dataclasses.dataclass(frozen=True)
class HistoryCursor:
    """Where a page of history ended: its last point's (time, source). The next page holds
    what sorts after it in (time descending, source ascending): older points, or points at
    the same time from later sources."""

    time: dt.datetime
    source: str

    def before(self, source: str) -> Q:
        """The condition on a point time of `source` for its rows to follow the cursor."""
        if source > self.source:
            return Q(observed_at__lte=self.time)
        return Q(observed_at__lt=self.time)


# A cursor is `<microseconds since the epoch>.<market source>`: every text of that shape is a
# cursor (no other check is left once the pattern holds), so the schema can state it exactly,
# and a client's tooling that fills the pattern never meets a 400.
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
CURSOR_PATTERN = rf"^-?[0-9]{{1,16}}\.({'|'.join(source_names(MARKET))})$"


def cursor_encode(cursor: HistoryCursor) -> str:
    return f"{(cursor.time - _EPOCH) // _MICROSECOND}.{cursor.source}"


def cursor_decode(text: str) -> HistoryCursor:
    """The cursor `cursor_encode` made; ValueError for anything else."""
    if not re.fullmatch(CURSOR_PATTERN, text):
        raise ValueError("not a history cursor")
    micros, source = text.split(".", 1)
    return HistoryCursor(_EPOCH + int(micros) * _MICROSECOND, source)


def asset_history(
    *,
    asset: Asset,
    source: str | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    interval: str,
    limit: int,
    after: HistoryCursor | None = None,
) -> list[dict]:
    """The asset's quotes in [start, end), newest first (then by source); bucketed by hour or
    day on request; after `after` when paging.

    One index range of the unique (asset, source, observed_at) index per market source, each
    read newest first and at most `limit` long, merged here: the cost follows `limit`, not the
    asset's history. Buckets are aggregated over a window of about `limit` steps below the
    newest quote (LatestQuote), widened only across gaps (`_buckets`)."""
    sources = [source] if source else source_names(MARKET)
    ranges = {s: Q(asset=asset, source=s) for s in sources}
    for name in sources:
        if start:
            ranges[name] &= Q(observed_at__gte=start)
        if end:
            ranges[name] &= Q(observed_at__lt=end)
    if interval == "raw":
        rows = []
        for name, where in ranges.items():
            if after:
                where &= after.before(name)
            found = Quote.objects.filter(where).order_by("-observed_at").values(*POINT_FIELDS)
            rows.extend({"source": name, **row} for row in found[:limit])
        rows.sort(key=lambda r: r["source"])
        rows.sort(key=lambda r: r["observed_at"], reverse=True)  # stable: source order kept
        return [_raw_point(row) for row in rows[:limit]]
    return _buckets(asset, ranges, interval=interval, limit=limit, end=end, after=after)


def _raw_point(row: dict) -> dict:
    return {
        "source": row["source"],
        "time": row["observed_at"],
        "price_usd": row["price_usd"],
        "market_cap": row["market_cap"],
        "volume_24h": row["volume_24h"],
        "price_change_24h": row["price_change_24h"],
        "market_cap_rank": row["market_cap_rank"],
        "samples": 1,
    }


def _floor(moment: dt.datetime, interval: str) -> dt.datetime:
    moment = moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if interval == "day" else moment


def _buckets(asset, ranges, *, interval, limit, end, after) -> list[dict]:
    """The newest `limit` (bucket, source) pairs, aggregated from an index range: first the
    `limit` steps below the newest bucket that can show (all it takes when a source has a
    quote every step), widened by doubling only while the window holds fewer pairs and older
    quotes exist (gaps in the series). Every quote outside the window is older than every
    bucket in it, so a window holding `limit` pairs holds the answer."""
    step = STEPS[interval]
    newest = dict(
        LatestQuote.objects.filter(asset=asset, source__in=list(ranges)).values_list(
            "source", "observed_at"
        )
    )
    which, top = Q(), None
    for name, where in ranges.items():
        if name not in newest:  # no quote of it (LatestQuote is kept with every load)
            continue
        last = _floor(newest[name], interval)  # the newest bucket this page can show
        if end:
            last = min(last, _floor(end - dt.timedelta(microseconds=1), interval))
        if after:
            # Buckets before the cursor's, or the cursor's own bucket for later sources.
            last = min(last, after.time if name > after.source else after.time - step)
        which |= where & Q(observed_at__lt=last + step)
        top = last if top is None else max(top, last)
    if top is None:
        return []
    span = limit * step
    while True:
        floor = top - span + step
        rows = list(_bucket_rows(which & Q(observed_at__gte=floor), interval)[:limit])
        if len(rows) == limit or not Quote.objects.filter(which, observed_at__lt=floor).exists():
            break
        span *= 2
    return [
        {
            "source": r["source"],
            "time": r["bucket"],
            "price_usd": r["avg_price"],
            "price_min": r["min_price"],
            "price_max": r["max_price"],
            "market_cap": r["avg_cap"],
            "volume_24h": r["avg_volume"],
            "samples": r["samples"],
        }
        for r in rows
    ]


def _bucket_rows(which: Q, interval: str):
    trunc = TruncHour if interval == "hour" else TruncDay
    return (
        Quote.objects.filter(which)
        .annotate(bucket=trunc("observed_at"))
        .values("source", "bucket")
        .annotate(
            avg_price=Avg("price_usd"),
            min_price=Min("price_usd"),
            max_price=Max("price_usd"),
            avg_cap=Avg("market_cap"),
            avg_volume=Avg("volume_24h"),
            samples=Count("id"),
        )
        .order_by("-bucket", "source")
    )


def article_list(
    *,
    asset_slug: str | None = None,
    symbol: str | None = None,
    q: str | None = None,
    since: dt.datetime | None = None,
) -> QuerySet[Article]:
    """News, newest first, with the assets each article mentions (one extra query)."""
    qs = Article.objects.all()
    if asset_slug:
        qs = qs.filter(mentions__asset__slug=asset_slug)
    if symbol:
        qs = qs.filter(mentions__asset__symbol=symbol.strip().upper())
    if q:
        qs = qs.filter(Q(title__icontains=q) | Q(summary__icontains=q))
    if since:
        qs = qs.filter(published_at__gte=since)
    if asset_slug or symbol:
        qs = qs.distinct()
    return qs.order_by("-published_at", "-id").prefetch_related(
        Prefetch(
            "mentions",
            queryset=ArticleAsset.objects.select_related("asset").order_by("asset__slug"),
        )
    )


def article_rows(qs: QuerySet[Article]) -> list[dict]:
    """A page of `article_list` as plain rows, each with its mentions (`mentions`: slug, symbol
    and matched_by, by slug as the prefetch orders them): two queries whatever the page's
    length, as the prefetch made, and no model instances."""
    rows = list(
        qs.values("id", "feed", "guid", "title", "url", "summary", "author", "published_at")
    )
    if not rows:
        return rows
    mentions: dict[int, list[dict]] = {row["id"]: [] for row in rows}
    found = (
        ArticleAsset.objects.filter(article_id__in=list(mentions))
        .order_by("asset__slug")
        .values_list("article_id", "asset__slug", "asset__symbol", "matched_by")
    )
    for article_id, slug, symbol, matched_by in found:
        mentions[article_id].append({"slug": slug, "symbol": symbol, "matched_by": matched_by})
    for row in rows:
        row["mentions"] = mentions[row["id"]]
    return rows
