"""The read API over market data and news: /data, /assets, /assets/{slug},
/assets/{slug}/history, /news. Views parse parameters and call selectors; nothing else.

About 320 lines, on purpose: each of the five operations keeps its parameters, its OpenAPI
description (responses, examples) and its view side by side, which is what one reads together
when the schema and the answers must agree."""

from __future__ import annotations

import datetime as dt

from django.core.validators import RegexValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from crypto.history import (
    CURSOR_PATTERN,
    HISTORY_INTERVALS,
    HistoryCursor,
    asset_find,
    asset_history,
    cursor_decode,
    cursor_encode,
)
from crypto.models import Asset
from crypto.response_cache import versioned
from crypto.selectors import (
    article_list,
    article_rows,
    asset_get,
    asset_list,
    latest_quote_list,
    latest_quote_page,
)
from crypto.serializers import (
    ArticleSerializer,
    AssetDetailSerializer,
    AssetSerializer,
    HistorySerializer,
    MarketItemSerializer,
    articles_representation,
    identities_representation,
    latest_representation,
    market_items_representation,
    points_representation,
)
from kasparro.core.api import (
    ERRORS,
    NOT_FOUND,
    ApiView,
    PageParams,
    QueryText,
    choice_parameter,
    envelope_serializer,
    parameter_examples,
)
from kasparro.core.catalogue import (
    MARKET,
    NEWS,
    aliases_text,
    canonical_name,
    source_names,
    source_names_and_aliases,
)
from kasparro.core.csv_export import FORMAT_PARAMETER, CsvApiView, csv_response, wants_csv
from kasparro.core.errors import NotFoundError
from kasparro.core.paging import page_with_total
from kasparro.core.request_id import get_request_id

# --- /data ---------------------------------------------------------------------------------------


class DataParams(PageParams):
    source = choice_parameter(
        source_names_and_aliases(),
        what="source",
        help_text=f"{', '.join(source_names())}; also {aliases_text()}",
    )
    symbol = QueryText(max_length=50, help_text="exact symbol, any case")
    name = QueryText(max_length=200, help_text="text in the asset's name")

    def validate_source(self, value: str) -> str:
        return canonical_name(value)


class DataApi(ApiView):
    """The original contract: latest market data per asset and source, or news with
    `source=rss`, in the original envelope."""

    @extend_schema(
        parameters=[DataParams],
        responses={
            200: envelope_serializer(
                "DataEnvelope",
                PolymorphicProxySerializer(
                    component_name="DataItem",
                    serializers=[MarketItemSerializer, ArticleSerializer],
                    resource_type_field_name=None,
                    many=True,
                ),
            ),
            **ERRORS,
        },
        examples=parameter_examples(source="coingecko", symbol="BTC", name="bitcoin", limit=10),
        description="Latest quote per asset and source (best ranked first). A news source "
        f"(`source={source_names(NEWS)[0]}`, also {aliases_text()}) lists articles in the same "
        "envelope.",
    )
    @versioned
    def get(self, request: Request) -> Response:
        p = self.params(DataParams, request)
        limit, offset = p["limit"], p["offset"]
        if p.get("source") in source_names(NEWS):
            qs = article_list(symbol=p.get("symbol"), q=p.get("name"))
            total = qs.count()
            data = articles_representation(article_rows(qs[offset : offset + limit]))
        else:
            qs = latest_quote_list(
                sources=[p["source"]] if p.get("source") else None,
                symbol=p.get("symbol"),
                name=p.get("name"),
            )
            rows, total = latest_quote_page(qs, offset=offset, limit=limit)
            data = market_items_representation(rows)
        return self.envelope(request, data, limit=limit, offset=offset, total=total)


# --- /assets -------------------------------------------------------------------------------------


class AssetListParams(PageParams):
    q = QueryText(max_length=200, help_text="slug, symbol or name")
    symbol = QueryText(max_length=50, help_text="exact symbol, any case")


class AssetListApi(ApiView):
    @extend_schema(
        operation_id="assets_list",
        parameters=[AssetListParams],
        responses={200: envelope_serializer("AssetEnvelope", AssetSerializer), **ERRORS},
        examples=parameter_examples(q="bitcoin", symbol="BTC", limit=10, offset=0),
    )
    @versioned
    def get(self, request: Request) -> Response:
        p = self.params(AssetListParams, request)
        qs = asset_list(q=p.get("q"), symbol=p.get("symbol"))
        limit, offset = p["limit"], p["offset"]
        # AssetSerializer's fields are text as stored: the rows are its representation.
        fields = tuple(AssetSerializer.Meta.fields)
        data, total = page_with_total(qs, offset=offset, limit=limit, fields=fields)
        return self.envelope(request, data, limit=limit, offset=offset, total=total)


def _asset_or_404(slug: str, find=asset_get) -> Asset:
    asset = find(slug=slug)
    if asset is None:
        raise NotFoundError(f"No asset with slug {slug!r}.")
    return asset


class AssetDetailApi(ApiView):
    @extend_schema(
        responses={200: AssetDetailSerializer, **NOT_FOUND, **ERRORS},
        examples=parameter_examples(path={"slug": "bitcoin"}),
    )
    @versioned
    def get(self, request: Request, slug: str) -> Response:
        asset = _asset_or_404(slug)
        return Response(
            {
                "request_id": get_request_id(),
                "slug": asset.slug,
                "symbol": asset.symbol,
                "name": asset.name,
                "identities": identities_representation(asset.identities.all()),
                "latest": latest_representation(asset.latest_quotes.all()),
            }
        )


NOT_A_CURSOR = "not a cursor of this API: pass back a page's `next` as it came"


class HistoryParams(serializers.Serializer):
    # Market sources only: the history is quotes; news has none.
    source = choice_parameter(source_names(MARKET), what="market source")
    start = serializers.DateTimeField(required=False, help_text="ISO 8601, inclusive")
    # An `end` at or before `start` is an empty range: no points, not an error (the schema
    # cannot relate two parameters, so it cannot call that pair invalid).
    end = serializers.DateTimeField(required=False, help_text="ISO 8601, exclusive")
    interval = serializers.ChoiceField(choices=HISTORY_INTERVALS, default="raw")
    limit = serializers.IntegerField(default=500, min_value=1, max_value=5000)
    # Its pattern is exactly the cursors there are, so a value the schema allows is never
    # refused; taken as sent (no trimming), as the pattern reads it.
    cursor = serializers.CharField(
        required=False,
        trim_whitespace=False,
        validators=[RegexValidator(CURSOR_PATTERN, NOT_A_CURSOR)],
        help_text="the `next` of the previous page: where it ended",
    )

    def validate_cursor(self, value: str) -> HistoryCursor:
        try:  # the final word: Python's `$` lets a trailing newline past the pattern
            return cursor_decode(value)
        except ValueError:
            raise serializers.ValidationError(NOT_A_CURSOR) from None


HISTORY_CSV_COLUMNS = [
    ("source", lambda p: p["source"]),
    ("time", lambda p: p["time"].isoformat()),
    *(
        (name, lambda p, name=name: p.get(name))
        for name in ("price_usd", "price_min", "price_max", "market_cap", "volume_24h")
    ),
    ("samples", lambda p: p["samples"]),
]


class AssetHistoryApi(CsvApiView):
    @extend_schema(
        parameters=[HistoryParams, FORMAT_PARAMETER],
        responses={
            (200, "application/json"): HistorySerializer,
            (200, "text/csv"): OpenApiTypes.STR,
            **NOT_FOUND,
            **ERRORS,
        },
        examples=parameter_examples(
            path={"slug": "bitcoin"},
            source="coingecko",
            start="2025-12-01T00:00:00Z",
            end="2026-01-01T00:00:00Z",
            interval="day",
            limit=100,
            format="json",
        ),
        description="The asset's time series in [start, end), newest first; `interval=hour` "
        "or `day` buckets it (average, min and max price per bucket and source). A full page "
        "gives `next` (and a `Link: rel=next` header), the same request with a `cursor` for "
        "the points after it; each page costs the same however long the history. "
        "`format=csv` streams the same points as CSV.",
    )
    @versioned
    def get(self, request: Request, slug: str) -> Response:
        p = self.params(HistoryParams, request)
        asset = _asset_or_404(slug, find=asset_find)  # no identities or latest: one query
        points = asset_history(
            asset=asset,
            source=p.get("source"),
            start=p.get("start"),
            end=p.get("end"),
            interval=p["interval"],
            limit=p["limit"],
            after=p.get("cursor"),
            for_json=not wants_csv(request),  # CSV writes each Decimal's own text
        )
        following = None
        if len(points) == p["limit"]:  # there may be more: where this page ended
            last = points[-1]
            query = request.query_params.copy()
            query["cursor"] = cursor_encode(HistoryCursor(last["time"], last["source"]))
            following = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        if wants_csv(request):
            response = csv_response(
                points,
                HISTORY_CSV_COLUMNS,
                filename=f"{asset.slug}-{p['interval']}-history.csv",
            )
        else:
            response = Response(
                {
                    "request_id": get_request_id(),
                    "api_latency_ms": self.latency_ms(request),
                    "slug": asset.slug,
                    "interval": p["interval"],
                    "next": following,
                    "data": points_representation(points),
                }
            )
        if following:
            response["Link"] = f'<{following}>; rel="next"'
        return response


# --- /news ---------------------------------------------------------------------------------------


class NewsParams(PageParams):
    asset = QueryText(max_length=200, help_text="asset slug")
    q = QueryText(max_length=200, help_text="text in title/summary")
    since = serializers.DateTimeField(required=False, help_text="ISO 8601")


NEWS_CSV_COLUMNS = [
    ("id", lambda a: a.pk),
    ("published_at", lambda a: a.published_at.isoformat() if a.published_at else None),
    ("title", lambda a: a.title),
    ("url", lambda a: a.url),
    ("author", lambda a: a.author),
    ("assets", lambda a: " ".join(m.asset.slug for m in a.mentions.all())),
    ("summary", lambda a: a.summary),
    ("feed", lambda a: a.feed),
    ("guid", lambda a: a.guid),
]


class NewsApi(CsvApiView):
    @extend_schema(
        parameters=[NewsParams, FORMAT_PARAMETER],
        responses={
            (200, "application/json"): envelope_serializer("NewsEnvelope", ArticleSerializer),
            (200, "text/csv"): OpenApiTypes.STR,
            **ERRORS,
        },
        examples=parameter_examples(
            asset="bitcoin", q="ETF", since="2025-12-01T00:00:00Z", limit=10, format="json"
        ),
        description="News, newest first, with the assets each article mentions. "
        "`format=csv` streams the same page of articles as CSV.",
    )
    @versioned
    def get(self, request: Request) -> Response:
        p = self.params(NewsParams, request)
        since: dt.datetime | None = p.get("since")
        qs = article_list(asset_slug=p.get("asset"), q=p.get("q"), since=since)
        limit, offset = p["limit"], p["offset"]
        if wants_csv(request):
            return csv_response(qs[offset : offset + limit], NEWS_CSV_COLUMNS, filename="news.csv")
        data = articles_representation(article_rows(qs[offset : offset + limit]))
        return self.envelope(request, data, limit=limit, offset=offset, total=qs.count())
