"""Reads of market data and news, shaped for the API. Every query here is served by an index
(tests/benchmarks/api_load.py prints their EXPLAIN) and none scans the whole time series."""

from __future__ import annotations

import datetime as dt

from django.db.models import Avg, Count, F, Max, Min, Prefetch, Q, QuerySet
from django.db.models.functions import TruncDay, TruncHour

from crypto.models import Article, ArticleAsset, Asset, LatestQuote, Quote, SourceAsset

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


def asset_history(
    *,
    asset: Asset,
    source: str | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    interval: str,
    limit: int,
) -> list[dict]:
    """The asset's quotes in [start, end), newest first; bucketed by hour or day on request.

    Served by the unique (asset, source, observed_at) index: the asset's range, nothing else.
    """
    qs = Quote.objects.filter(asset=asset)
    if source:
        qs = qs.filter(source=source)
    if start:
        qs = qs.filter(observed_at__gte=start)
    if end:
        qs = qs.filter(observed_at__lt=end)
    if interval == "raw":
        rows = qs.order_by("-observed_at", "source").values(
            "source",
            "observed_at",
            "price_usd",
            "market_cap",
            "volume_24h",
            "price_change_24h",
            "market_cap_rank",
        )[:limit]
        return [
            {
                "source": r["source"],
                "time": r["observed_at"],
                "price_usd": r["price_usd"],
                "market_cap": r["market_cap"],
                "volume_24h": r["volume_24h"],
                "price_change_24h": r["price_change_24h"],
                "market_cap_rank": r["market_cap_rank"],
                "samples": 1,
            }
            for r in rows
        ]
    trunc = TruncHour if interval == "hour" else TruncDay
    rows = (
        qs.annotate(bucket=trunc("observed_at"))
        .values("source", "bucket")
        .annotate(
            avg_price=Avg("price_usd"),
            min_price=Min("price_usd"),
            max_price=Max("price_usd"),
            avg_cap=Avg("market_cap"),
            avg_volume=Avg("volume_24h"),
            samples=Count("id"),
        )
        .order_by("-bucket", "source")[:limit]
    )
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
