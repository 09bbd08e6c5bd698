"""Reads for the dashboard's pages: the markets table (with sparklines), an asset's chart
series, and the sources' freshness. A constant number of queries per page, whatever the number
of assets or quotes: each series is one index range per shown asset."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict

from django.core.cache import cache
from django.db.models import Avg, F, FloatField, Max, Min, Q, QuerySet
from django.db.models.functions import Cast, TruncHour

from crypto.history import asset_history
from crypto.models import Article, Asset, LatestQuote, Quote
from kasparro.core.catalogue import MARKET, NEWS, source_entry, source_names

SPARKLINE_DAYS = 7
RANGES = {"24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30)}
RANGE_CHOICES = (*RANGES, "all")
# The interval a range shows by default: about a hundred to a thousand points.
DEFAULT_INTERVAL = {"24h": "raw", "7d": "hour", "30d": "hour", "all": "day"}
CHART_POINTS = 5000


@dataclasses.dataclass
class MarketRow:
    asset: Asset
    quote: LatestQuote  # the preferred source's latest quote (catalogue order)
    sources: list[str]
    sparkline: Sparkline


def market_assets(*, q: str = "", source: str = "") -> QuerySet[Asset]:
    """Assets with a market quote, best market-cap rank first (unranked last)."""
    qs = Asset.objects.filter(latest_quotes__isnull=False)
    if source:
        qs = qs.filter(latest_quotes__source=source)
    if q:
        q = q.strip()
        qs = qs.filter(Q(symbol__iexact=q) | Q(name__icontains=q) | Q(slug__icontains=q))
    return qs.annotate(best_rank=Min("latest_quotes__market_cap_rank")).order_by(
        F("best_rank").asc(nulls_last=True), "slug"
    )


def market_rows(assets: list[Asset], *, source: str = "") -> list[MarketRow]:
    """The table's rows for a page of assets: two queries (latest quotes, sparklines). Each
    row shows the quote of `source` if given, else of the first source in catalogue order."""
    names = source_names(MARKET)
    if source in names:
        names = [source, *(name for name in names if name != source)]
    order = {name: i for i, name in enumerate(names)}
    quotes: dict[int, list[LatestQuote]] = defaultdict(list)
    for quote in LatestQuote.objects.filter(asset__in=assets):
        quotes[quote.asset_id].append(quote)
    preferred = {}
    for asset_id, found in quotes.items():
        found.sort(key=lambda quote: order.get(quote.source, len(order)))
        preferred[asset_id] = found[0]
    lines = _sparklines(quotes)
    return [
        MarketRow(
            asset=asset,
            quote=preferred[asset.pk],
            sources=[quote.source for quote in quotes[asset.pk]],
            sparkline=lines.get(asset.pk, Sparkline()),
        )
        for asset in assets
        if asset.pk in preferred
    ]


SPARKLINE_POINTS = 60  # a 120-pixel line shows no more
# A backfill of older hours (no newer quote) shows within the hour.
SPARKLINE_CACHE_SECONDS = 3600


@dataclasses.dataclass(frozen=True)
class Sparkline:
    """Hourly prices of one source over the week before its newest quote."""

    points: tuple[float, ...] = ()
    source: str = ""
    end: dt.datetime | None = None


def _sparklines(quotes: dict[int, list[LatestQuote]]) -> dict[int, Sparkline]:
    """Each asset's sparkline: of its sources, the one with the most hourly prices in the week
    before that source's newest quote (ties: the row's source order), thinned to
    SPARKLINE_POINTS. One source's series, not a blend: a CSV drop that stopped a year ago
    never drags a live CoinGecko line. Cached under the asset's newest quote times, so a new
    quote is a new key (never a stale line); the misses cost one query, an index range per
    (asset, source) of the series' unique index."""
    if not quotes:
        return {}
    keys = {
        asset_id: f"spark2:{asset_id}:"
        + ",".join(sorted(f"{q.source}@{q.observed_at.timestamp()}" for q in found))
        for asset_id, found in quotes.items()
    }
    cached = cache.get_many(list(keys.values()))
    lines = {a: cached[k] for a, k in keys.items() if k in cached}
    missing = {a: found for a, found in quotes.items() if a not in lines}
    if missing:
        fresh = _sparklines_read(missing)
        lines.update(fresh)
        cache.set_many(
            {keys[a]: fresh.get(a, Sparkline()) for a in missing}, timeout=SPARKLINE_CACHE_SECONDS
        )
    return lines


def _sparklines_read(quotes: dict[int, list[LatestQuote]]) -> dict[int, Sparkline]:
    which = Q()
    for asset_id, found in quotes.items():
        for quote in found:  # (asset, source, time): a range of the series' unique index
            start = quote.observed_at - dt.timedelta(days=SPARKLINE_DAYS)
            which |= Q(asset_id=asset_id, source=quote.source, observed_at__gt=start)
    rows = (
        Quote.objects.filter(which)
        .annotate(hour=TruncHour("observed_at"))
        .values("asset_id", "source", "hour")
        .annotate(price=Cast(Avg("price_usd"), FloatField()))  # a float off the wire
        .order_by("asset_id", "source", "hour")
        # Grouped by hour, ordered by it, but not selected: converting thousands of bucket
        # times back to aware datetimes cost more than the query.
        .values_list("asset_id", "source", "price")
    )
    series: dict[tuple[int, str], list[float]] = defaultdict(list)
    for asset_id, source, price in rows:
        if price is not None:
            series[asset_id, source].append(price)
    lines = {}
    for asset_id, found in quotes.items():
        richest = {
            q.source: (len(series.get((asset_id, q.source), ())), -i) for i, q in enumerate(found)
        }
        best = max(found, key=lambda q: richest[q.source])
        points = series.get((asset_id, best.source))
        if points:
            lines[asset_id] = Sparkline(tuple(_thin(points)), best.source, best.observed_at)
    return lines


def _thin(points: list[float]) -> list[float]:
    """At most SPARKLINE_POINTS, evenly spread, the first and last kept."""
    if len(points) <= SPARKLINE_POINTS:
        return points
    step = (len(points) - 1) / (SPARKLINE_POINTS - 1)
    return [points[round(i * step)] for i in range(SPARKLINE_POINTS)]


@dataclasses.dataclass
class Freshness:
    source: str
    label: str
    updated_at: dt.datetime | None


def freshness() -> list[Freshness]:
    """When each source's data last changed: two small aggregates."""
    market = dict(
        LatestQuote.objects.values("source")
        .annotate(last=Max("observed_at"))
        .values_list("source", "last")
    )
    news = Article.objects.aggregate(last=Max("fetched_at"))["last"]
    return [
        Freshness(
            name,
            source_entry(name).label,
            news if source_entry(name).kind == NEWS else market.get(name),
        )
        for name in source_names()
    ]


def chart_series(*, asset: Asset, span: str, interval: str) -> dict:
    """The asset's history for its chart, one series per source, oldest first. The range ends
    at the asset's newest quote (sample data may be old), not at the wall clock."""
    # The newest quote per source is kept in LatestQuote: no walk over the asset's series.
    newest = LatestQuote.objects.filter(asset=asset).aggregate(last=Max("observed_at"))["last"]
    start = newest - RANGES[span] if newest and span in RANGES else None
    points = asset_history(
        asset=asset, source=None, start=start, end=None, interval=interval, limit=CHART_POINTS
    )
    series: dict[str, dict[str, list]] = {}
    for point in reversed(points):
        line = series.setdefault(
            point["source"], {"time": [], "price": [], "low": [], "high": [], "cap": []}
        )
        line["time"].append(point["time"].isoformat())
        line["price"].append(_float(point["price_usd"]))
        line["low"].append(_float(point.get("price_min", point["price_usd"])))
        line["high"].append(_float(point.get("price_max", point["price_usd"])))
        line["cap"].append(_float(point["market_cap"]))
    return {
        "series": series,
        "start": start.isoformat() if start else None,
        "points": len(points),
        "truncated": len(points) >= CHART_POINTS,
    }


def _float(value) -> float | None:
    return float(value) if value is not None else None
