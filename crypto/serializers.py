"""The read API's response shapes (the original service's field names for /data)."""

from __future__ import annotations

import datetime as dt
import decimal

from django.utils import timezone
from rest_framework import serializers

from crypto.models import Article, Asset, LatestQuote
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


_QUANTUM = decimal.Decimal(1).scaleb(-18)
_CONTEXT = decimal.Context(prec=60)
_PRICES = ("price_usd", "price_min", "price_max", "market_cap", "volume_24h")


def _number(value) -> float | None:
    """What PointSerializer's DecimalField gives (quantized to 18 places), as the JSON renderer
    writes it (a float): converted here, so rendering needs no per-value callback."""
    if value is None:
        return None
    if not isinstance(value, decimal.Decimal):
        value = decimal.Decimal(str(value))
    return float(value.quantize(_QUANTUM, context=_CONTEXT))


def _time(value: dt.datetime) -> str:
    text = timezone.localtime(value).isoformat() if timezone.is_aware(value) else value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def points_representation(points: list[dict]) -> list[dict]:
    """PointSerializer(points, many=True).data, built without DRF's per-field machinery: the
    history's hot path (500 points cost more to serialize than to read). Field for field the
    same output; tests/api/test_history_paging.py holds them equal."""
    out = []
    for point in points:
        row = {"source": point["source"], "time": _time(point["time"])}
        for name in _PRICES:  # a raw point has no min and max: null, as allow_null gives
            row[name] = _number(point.get(name))
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
