"""The read API over market data and news: /data, /assets, /assets/{slug},
/assets/{slug}/history, /news. Views parse parameters and call selectors; nothing else."""

from __future__ import annotations

import datetime as dt

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from crypto.models import Asset
from crypto.selectors import (
    HISTORY_INTERVALS,
    HistoryCursor,
    article_list,
    asset_get,
    asset_history,
    asset_list,
    cursor_decode,
    cursor_encode,
    latest_quote_list,
)
from crypto.serializers import (
    ArticleSerializer,
    AssetDetailSerializer,
    AssetSerializer,
    HistorySerializer,
    IdentitySerializer,
    LatestSerializer,
    MarketItemSerializer,
    points_representation,
)
from kasparro.core.api import (
    ERRORS,
    ApiView,
    ErrorSerializer,
    PageParams,
    envelope_serializer,
)
from kasparro.core.catalogue import MARKET, NEWS, aliases_text, canonical_name, source_names
from kasparro.core.csv_export import FORMAT_PARAMETER, CsvApiView, csv_response, wants_csv
from kasparro.core.errors import NotFoundError
from kasparro.core.request_id import get_request_id

# --- /data ---------------------------------------------------------------------------------------


class DataParams(PageParams):
    source = serializers.CharField(
        required=False, help_text=f"{', '.join(source_names())}; also {aliases_text()}"
    )
    symbol = serializers.CharField(required=False, max_length=50)
    name = serializers.CharField(required=False, max_length=200)

    def validate_source(self, value: str) -> str:
        canonical = canonical_name(value)
        if canonical is None:
            raise serializers.ValidationError(
                f"unknown source {value.strip().lower()!r}; "
                f"one of {', '.join(source_names())} (also {aliases_text()})"
            )
        return canonical


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
        description="Latest quote per asset and source (best ranked first). A news source "
        f"(`source={source_names(NEWS)[0]}`, also {aliases_text()}) lists articles in the same "
        "envelope.",
    )
    def get(self, request: Request) -> Response:
        p = self.params(DataParams, request)
        limit, offset = p["limit"], p["offset"]
        if p.get("source") in source_names(NEWS):
            qs = article_list(symbol=p.get("symbol"), q=p.get("name"))
            total = qs.count()
            data = ArticleSerializer(qs[offset : offset + limit], many=True).data
        else:
            qs = latest_quote_list(
                sources=[p["source"]] if p.get("source") else None,
                symbol=p.get("symbol"),
                name=p.get("name"),
            )
            total = qs.count()
            data = MarketItemSerializer(qs[offset : offset + limit], many=True).data
        return self.envelope(request, data, limit=limit, offset=offset, total=total)


# --- /assets -------------------------------------------------------------------------------------


class AssetListParams(PageParams):
    q = serializers.CharField(required=False, max_length=200, help_text="slug, symbol or name")
    symbol = serializers.CharField(required=False, max_length=50)


class AssetListApi(ApiView):
    @extend_schema(
        operation_id="assets_list",
        parameters=[AssetListParams],
        responses={200: envelope_serializer("AssetEnvelope", AssetSerializer), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        p = self.params(AssetListParams, request)
        qs = asset_list(q=p.get("q"), symbol=p.get("symbol"))
        limit, offset = p["limit"], p["offset"]
        data = AssetSerializer(qs[offset : offset + limit], many=True).data
        return self.envelope(request, data, limit=limit, offset=offset, total=qs.count())


def _asset_or_404(slug: str) -> Asset:
    asset = asset_get(slug=slug)
    if asset is None:
        raise NotFoundError(f"No asset with slug {slug!r}.")
    return asset


class AssetDetailApi(ApiView):
    @extend_schema(responses={200: AssetDetailSerializer, 404: ErrorSerializer, **ERRORS})
    def get(self, request: Request, slug: str) -> Response:
        asset = _asset_or_404(slug)
        return Response(
            {
                "request_id": get_request_id(),
                "slug": asset.slug,
                "symbol": asset.symbol,
                "name": asset.name,
                "identities": IdentitySerializer(asset.identities.all(), many=True).data,
                "latest": LatestSerializer(asset.latest_quotes.all(), many=True).data,
            }
        )


class HistoryParams(serializers.Serializer):
    source = serializers.CharField(required=False)
    start = serializers.DateTimeField(required=False, help_text="ISO 8601, inclusive")
    end = serializers.DateTimeField(required=False, help_text="ISO 8601, exclusive")
    interval = serializers.ChoiceField(choices=HISTORY_INTERVALS, default="raw")
    limit = serializers.IntegerField(default=500, min_value=1, max_value=5000)
    cursor = serializers.CharField(
        required=False,
        max_length=200,
        help_text="the `next` of the previous page: where it ended (opaque)",
    )

    def validate_cursor(self, value: str) -> HistoryCursor:
        try:
            return cursor_decode(value)
        except ValueError:
            raise serializers.ValidationError(
                "not a cursor of this API: pass back a page's `next` as it came"
            ) from None

    def validate_source(self, value: str) -> str:
        value = value.strip().lower()
        if value not in source_names(MARKET):
            raise serializers.ValidationError(
                f"unknown market source {value!r}; one of {', '.join(source_names(MARKET))}"
            )
        return value

    def validate(self, attrs: dict) -> dict:
        start, end = attrs.get("start"), attrs.get("end")
        if start and end and start >= end:
            raise serializers.ValidationError({"end": "must be after start"})
        return attrs


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
            404: ErrorSerializer,
            **ERRORS,
        },
        description="The asset's time series in [start, end), newest first; `interval=hour` "
        "or `day` buckets it (average, min and max price per bucket and source). A full page "
        "gives `next` (and a `Link: rel=next` header), the same request with a `cursor` for "
        "the points after it; each page costs the same however long the history. "
        "`format=csv` streams the same points as CSV.",
    )
    def get(self, request: Request, slug: str) -> Response:
        p = self.params(HistoryParams, request)
        asset = _asset_or_404(slug)
        points = asset_history(
            asset=asset,
            source=p.get("source"),
            start=p.get("start"),
            end=p.get("end"),
            interval=p["interval"],
            limit=p["limit"],
            after=p.get("cursor"),
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
    asset = serializers.CharField(required=False, max_length=200, help_text="asset slug")
    q = serializers.CharField(required=False, max_length=200, help_text="text in title/summary")
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
        description="News, newest first, with the assets each article mentions. "
        "`format=csv` streams the same page of articles as CSV.",
    )
    def get(self, request: Request) -> Response:
        p = self.params(NewsParams, request)
        since: dt.datetime | None = p.get("since")
        qs = article_list(asset_slug=p.get("asset"), q=p.get("q"), since=since)
        limit, offset = p["limit"], p["offset"]
        if wants_csv(request):
            return csv_response(qs[offset : offset + limit], NEWS_CSV_COLUMNS, filename="news.csv")
        data = ArticleSerializer(qs[offset : offset + limit], many=True).data
        return self.envelope(request, data, limit=limit, offset=offset, total=qs.count())
