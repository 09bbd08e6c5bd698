"""The read API's response shapes (the original service's field names for /data), and for
the hot paths the same shapes built without DRF (`*_representation`)."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Iterable

from django.utils import timezone
from rest_framework import serializers
from rest_framework.settings import api_settings

from crypto.models import PRICE_DIGITS, Article, Asset, LatestQuote, SourceAsset
from kasparro.core.catalogue import NEWS, source_names


class MarketItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.CharField()
    symbol = serializers.CharField(source="asset.symbol")
    name = serializers.CharField(source="asset.name")
    slug = serializers.CharField(source="asset.slug")
    current_price = serializers.DecimalField(
        source="price_usd",
        max_digits=40,
        decimal_places=18,
        allow_null=True,
        coerce_to_string=False,
    )
    market_cap = serializers.DecimalField(
        max_digits=40, decimal_places=18, allow_null=True, coerce_to_string=False
    )
    volume_24h = serializers.DecimalField(
        max_digits=40, decimal_places=18, allow_null=True, coerce_to_string=False
    )
    price_change_24h = serializers.DecimalField(
        max_digits=40,
        decimal_places=18,
        allow_null=True,
        coerce_to_string=False,
        help_text="24-hour change in percent.",
    )
    market_cap_rank = serializers.IntegerField(allow_null=True)
    last_updated = serializers.DateTimeField(source="observed_at")


class MentionSerializer(serializers.Serializer):
    slug = serializers.CharField(source="asset.slug")
    symbol = serializers.CharField(source="asset.symbol")
    matched_by = serializers.CharField()


class ArticleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.SerializerMethodField()
    feed = serializers.CharField()
    guid = serializers.CharField()
    title = serializers.CharField()
    url = serializers.CharField(allow_blank=True)
    summary = serializers.CharField(allow_blank=True)
    author = serializers.CharField(allow_blank=True)
    published_at = serializers.DateTimeField(allow_null=True)
    assets = MentionSerializer(source="mentions", many=True)

    def get_source(self, obj: Article) -> str:
        return source_names(NEWS)[0]  # the one news source


class AssetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Asset
        fields = ["slug", "symbol", "name"]


class IdentitySerializer(serializers.Serializer):
    source = serializers.CharField()
    key = serializers.CharField()
    match_method = serializers.CharField()
    confidence = serializers.IntegerField()


class LatestSerializer(serializers.ModelSerializer):
    class Meta:
        model = LatestQuote
        fields = [
            "source",
            "observed_at",
            "price_usd",
            "market_cap",
            "volume_24h",
            "price_change_24h",
            "market_cap_rank",
        ]
        # Output only: every field is always in the answer (null where the model allows it),
        # which read-only fields say in the schema (required), unlike fields with a default.
        read_only_fields = fields


class AssetDetailSerializer(serializers.Serializer):
    request_id = serializers.CharField(allow_null=True)
    slug = serializers.CharField()
    symbol = serializers.CharField()
    name = serializers.CharField()
    identities = IdentitySerializer(many=True)
    latest = LatestSerializer(many=True)


class PointSerializer(serializers.Serializer):
    source = serializers.CharField()
    time = serializers.DateTimeField()
    price_usd = serializers.DecimalField(
        max_digits=60, decimal_places=18, allow_null=True, coerce_to_string=False
    )
    # Null in raw points (a bucket's range), but always there: the schema says required.
    price_min = serializers.DecimalField(
        max_digits=60, decimal_places=18, allow_null=True, coerce_to_string=False
    )
    price_max = serializers.DecimalField(
        max_digits=60, decimal_places=18, allow_null=True, coerce_to_string=False
    )
    market_cap = serializers.DecimalField(
        max_digits=60, decimal_places=18, allow_null=True, coerce_to_string=False
    )
    volume_24h = serializers.DecimalField(
        max_digits=60, decimal_places=18, allow_null=True, coerce_to_string=False
    )
    samples = serializers.IntegerField()


def _decimal_writer(*, max_digits: int, decimal_places: int, as_text: bool) -> Callable:
    """What a DecimalField(max_digits, decimal_places, coerce_to_string=as_text) gives for a
    value (quantized in the field's precision), as the JSON renderer writes it: the text, or a
    float (the renderer's own conversion, done here so that rendering needs no callback)."""
    quantum = decimal.Decimal(1).scaleb(-decimal_places)
    context = decimal.Context(prec=max_digits)

    def write(value):
        if value is None:  # the serializer's null, before the field is asked
            return None
        if not isinstance(value, decimal.Decimal):
            value = decimal.Decimal(str(value).strip())
        quantized = value.quantize(quantum, context=context)
        return f"{quantized:f}" if as_text else float(quantized)

    return write


_point_number = _decimal_writer(max_digits=60, decimal_places=18, as_text=False)
_POINT_QUANTUM, _POINT_CONTEXT = decimal.Decimal(1).scaleb(-18), decimal.Context(prec=60)
_market_number = _decimal_writer(max_digits=40, decimal_places=18, as_text=False)
# LatestSerializer's fields are the model's (PRICE_DIGITS) with DRF's default coercion.
_model_number = {
    as_text: _decimal_writer(**PRICE_DIGITS, as_text=as_text) for as_text in (False, True)
}


def _time(value: dt.datetime | None, zone: dt.tzinfo) -> str | None:
    """DRF's DateTimeField output in ISO 8601 (the default format): in the current time zone
    (`zone`, asked once per page), "+00:00" written "Z"."""
    if value is None:
        return None
    value = value.astimezone(zone) if timezone.is_aware(value) else timezone.make_aware(value, zone)
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# The fast paths below build what a serializer gives without DRF's per-field machinery (on
# /data a page of 100 cost more to serialize than everything else). The serializers stay the
# schema's source of truth; tests/api/test_fast_serialization.py holds each pair equal, byte
# for byte once rendered.


def market_items_representation(rows: Iterable[dict]) -> list[dict]:
    """MarketItemSerializer(quotes, many=True).data from `latest_quote_page`'s rows."""
    zone = timezone.get_current_timezone()
    number = _market_number
    return [
        {
            "id": row["id"],
            "source": row["source"],
            "symbol": row["asset__symbol"],
            "name": row["asset__name"],
            "slug": row["asset__slug"],
            "current_price": number(row["price_usd"]),
            "market_cap": number(row["market_cap"]),
            "volume_24h": number(row["volume_24h"]),
            "price_change_24h": number(row["price_change_24h"]),
            "market_cap_rank": row["market_cap_rank"],
            "last_updated": _time(row["observed_at"], zone),
        }
        for row in rows
    ]


def articles_representation(rows: Iterable[dict]) -> list[dict]:
    """ArticleSerializer(articles, many=True).data from `article_rows` (mentions included)."""
    zone = timezone.get_current_timezone()
    source = source_names(NEWS)[0]
    return [
        {
            "id": row["id"],
            "source": source,
            "feed": row["feed"],
            "guid": row["guid"],
            "title": row["title"],
            "url": row["url"],
            "summary": row["summary"],
            "author": row["author"],
            "published_at": _time(row["published_at"], zone),
            "assets": row["mentions"],
        }
        for row in rows
    ]


def identities_representation(identities: Iterable[SourceAsset]) -> list[dict]:
    """IdentitySerializer(identities, many=True).data."""
    return [
        {
            "source": i.source,
            "key": i.key,
            "match_method": i.match_method,
            "confidence": i.confidence,
        }
        for i in identities
    ]


def latest_representation(quotes: Iterable[LatestQuote]) -> list[dict]:
    """LatestSerializer(quotes, many=True).data: a ModelSerializer's decimals, text unless
    REST_FRAMEWORK says otherwise (COERCE_DECIMAL_TO_STRING)."""
    zone = timezone.get_current_timezone()
    number = _model_number[bool(api_settings.COERCE_DECIMAL_TO_STRING)]
    return [
        {
            "source": q.source,
            "observed_at": _time(q.observed_at, zone),
            "price_usd": number(q.price_usd),
            "market_cap": number(q.market_cap),
            "volume_24h": number(q.volume_24h),
            "price_change_24h": number(q.price_change_24h),
            "market_cap_rank": q.market_cap_rank,
        }
        for q in quotes
    ]


_PRICES = ("price_usd", "price_min", "price_max", "market_cap", "volume_24h")


def points_representation(points: list[dict]) -> list[dict]:
    """PointSerializer(points, many=True).data, built without DRF's per-field machinery: the
    history's hot path (500 points cost more to serialize than to read). Field for field the
    same output; tests/api/test_history_paging.py holds them equal. Each step is DRF's, only
    inlined: a UTC time (the database's, in the default time zone) is written as it is, a
    Decimal quantized in the field's precision without the field's checks, and a number
    already sent as the text of that (`asset_history(for_json=True)`) read as a float."""
    zone = timezone.get_current_timezone()
    in_utc = dt.datetime(2000, 1, 1, tzinfo=zone).utcoffset() == dt.timedelta(0)
    utc, decimal_type = dt.UTC, decimal.Decimal
    quantum, context = _POINT_QUANTUM, _POINT_CONTEXT
    out = []
    for point in points:
        moment = point["time"]
        if in_utc and moment.tzinfo is utc:
            text = moment.isoformat()
            text = text[:-6] + "Z"
        else:
            text = _time(moment, zone)
        row = {"source": point["source"], "time": text}
        for name in _PRICES:  # a raw point has no min and max: null, as allow_null gives
            value = point.get(name)
            if type(value) is decimal_type:
                row[name] = float(value.quantize(quantum, context=context))
            elif type(value) is str:  # asset_history(for_json=True): already in 18 places
                row[name] = float(value)
            else:
                row[name] = _point_number(value)
        row["samples"] = point["samples"]
        out.append(row)
    return out


class HistorySerializer(serializers.Serializer):
    request_id = serializers.CharField(allow_null=True)
    api_latency_ms = serializers.FloatField()
    slug = serializers.CharField()
    interval = serializers.CharField()
    next = serializers.URLField(
        allow_null=True, help_text="the next page (the same request with a cursor), if any"
    )
    data = PointSerializer(many=True)
