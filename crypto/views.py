"""The dashboard's pages about market data and news (server-rendered, public like /data):
markets at `/`, an asset's page at `/coins/<slug>/`, news at `/articles/`. Tables work without
JavaScript; the chart (plotly.js) and live search (htmx) enhance them."""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render

from crypto.dashboard import (
    CHART_POINTS,
    DEFAULT_INTERVAL,
    RANGE_CHOICES,
    chart_series,
    freshness,
    market_assets,
    market_rows,
)
from crypto.history import HISTORY_INTERVALS
from crypto.selectors import article_list, asset_get
from kasparro.core.catalogue import MARKET, source_names

PER_PAGE = 50
NEWS_PER_PAGE = 30
ASSET_NEWS = 10


def _page_number(request) -> int:
    try:
        return max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return 1


def markets(request):
    q = request.GET.get("q", "").strip()[:100]
    source = request.GET.get("source", "")
    if source not in source_names(MARKET):
        source = ""
    paginator = Paginator(market_assets(q=q, source=source), PER_PAGE)
    page = paginator.get_page(_page_number(request))
    context = {
        "q": q,
        "source": source,
        "sources": source_names(MARKET),
        "page": page,
        "rows": market_rows(list(page.object_list), source=source),
    }
    if getattr(request, "htmx", False) and request.htmx.target == "markets":
        return render(request, "dashboard/_markets_table.html", context)
    context["freshness"] = freshness()
    return render(request, "dashboard/markets.html", context)


def asset_page(request, slug: str):
    asset = asset_get(slug=slug)
    if asset is None:
        raise Http404(f"No asset {slug!r}")
    span = request.GET.get("range", "7d")
    if span not in RANGE_CHOICES:
        span = "7d"
    interval = request.GET.get("interval", DEFAULT_INTERVAL[span])
    if interval not in HISTORY_INTERVALS:
        interval = DEFAULT_INTERVAL[span]
    chart = chart_series(asset=asset, span=span, interval=interval)
    query = {"format": "csv", "interval": interval, "limit": CHART_POINTS}
    if chart["start"]:
        query["start"] = chart["start"]
    csv_query = urlencode(query)
    return render(
        request,
        "dashboard/asset.html",
        {
            "asset": asset,
            "span": span,
            "interval": interval,
            "ranges": RANGE_CHOICES,
            "intervals": HISTORY_INTERVALS,
            "chart": chart,
            "csv_query": csv_query,
            "news": list(article_list(asset_slug=asset.slug)[:ASSET_NEWS]),
        },
    )


def articles(request):
    q = request.GET.get("q", "").strip()[:200]
    asset = request.GET.get("asset", "").strip()[:200]
    paginator = Paginator(article_list(asset_slug=asset or None, q=q or None), NEWS_PER_PAGE)
    page = paginator.get_page(_page_number(request))
    return render(request, "dashboard/articles.html", {"page": page, "q": q, "asset": asset})
