"""Reads of market data and news, shaped for the API. Every query here is served by an index
(tests/benchmarks/api_load.py prints their EXPLAIN) and none scans the whole time series. An
asset's history has a module of its own: `crypto.history`."""

from __future__ import annotations

import datetime as dt

from django.db.models import F, Prefetch, Q, QuerySet

from crypto.models import Article, ArticleAsset, Asset, LatestQuote, SourceAsset
from kasparro.core.paging import page_with_total


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
