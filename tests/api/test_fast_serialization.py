"""The hot paths' representations (crypto/serializers.py `*_representation`) give what the
serializers give, byte for byte once rendered: over the real samples, over rows at the edges
(null prices, the largest and smallest decimals, times in other zones, articles with no
mentions or several), and in another current time zone. The endpoints answer with them."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from crypto.models import Article, ArticleAsset, Asset, LatestQuote, SourceAsset
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
    AssetSerializer,
    IdentitySerializer,
    LatestSerializer,
    MarketItemSerializer,
    articles_representation,
    identities_representation,
    latest_representation,
    market_items_representation,
)

pytestmark = pytest.mark.django_db

KOLKATA = zoneinfo.ZoneInfo("Asia/Kolkata")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
HUGE = Decimal("123456789012345678901.123456789012345678")  # 39 digits of the column's 40
TINY = Decimal("1e-18")


def render(data) -> bytes:
    return JSONRenderer().render(data)


@pytest.fixture
def edges(db):
    """Quotes and articles at the edges of what the columns hold."""
    bare = Asset.objects.create(slug="edge-coin", symbol="EDGE", name="Édge «coin» \u2603")
    tiny = Asset.objects.create(slug="tiny-coin", symbol="TINY", name="Tiny")
    SourceAsset.objects.create(
        source="coingecko", key="edge-coin", asset=bare, match_method="manual", confidence=0
    )
    SourceAsset.objects.create(
        source="csv", key="EDGE|Edge", asset=bare, match_method="symbol_name", confidence=87
    )
    at = dt.datetime(2025, 12, 28, 5, 56, 13, 703000, tzinfo=dt.UTC)
    LatestQuote.objects.create(asset=bare, source="coingecko", observed_at=at)  # all null
    LatestQuote.objects.create(
        asset=bare,
        source="csv",
        observed_at=dt.datetime(2025, 12, 28, 11, 26, 13, tzinfo=KOLKATA),
        price_usd=HUGE,
        market_cap=-HUGE,
        volume_24h=Decimal(0),
        price_change_24h=Decimal("-0.000000000000000001"),
        market_cap_rank=2**31 - 1,
    )
    LatestQuote.objects.create(
        asset=tiny,
        source="csv",
        observed_at=dt.datetime(2024, 3, 10, 1, 59, 59, 999999, tzinfo=NEW_YORK),
        price_usd=TINY,
        market_cap=Decimal("0.000007212345678901"),
        volume_24h=Decimal("1750000002240.123456789"),
        price_change_24h=Decimal("100"),
        market_cap_rank=None,
    )
    common = {"feed": "https://example.com/feed", "fetched_at": at, "updated_at": at}
    lonely = Article.objects.create(
        guid="lonely", title="No coins here", url="", summary="", author="", **common
    )
    busy = Article.objects.create(
        guid="busy",
        title='Bitcoin, $TINY and EDGE \u2014 «quotes» "and" \\ slashes',
        url="https://example.com/a?b=1&c=2",
        summary="line one\nline two",
        author="Ünïcode Author",
        published_at=dt.datetime(2025, 12, 27, 23, 0, tzinfo=NEW_YORK),
        **common,
    )
    undated = Article.objects.create(guid="undated", title="When?", published_at=None, **common)
    for asset, how in ((tiny, "cashtag"), (bare, "ticker")):
        ArticleAsset.objects.create(article=busy, asset=asset, matched_by=how)
    ArticleAsset.objects.create(article=undated, asset=bare, matched_by="name")
    return {"lonely": lonely, "busy": busy, "undated": undated}


ZONES = [None, "Asia/Kolkata", "America/New_York"]


def _in_zone(name):
    return timezone.override(name) if name else timezone.override(timezone.get_default_timezone())


def _page(qs) -> list[dict]:
    rows, total = latest_quote_page(qs, offset=0, limit=100_000)
    assert total == len(rows)
    return rows


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("data", ["samples", "edges"])
def test_market_items_equal_the_serializers(request, data, zone):
    request.getfixturevalue("seeded" if data == "samples" else "edges")
    qs = latest_quote_list()
    assert qs.count() > (100 if data == "samples" else 2)
    with _in_zone(zone):
        slow = MarketItemSerializer(qs, many=True).data
        fast = market_items_representation(_page(qs))
    assert render(fast) == render(slow)


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("data", ["samples", "edges"])
def test_articles_equal_the_serializers(request, data, zone):
    request.getfixturevalue("seeded" if data == "samples" else "edges")
    with _in_zone(zone):
        for qs in (article_list(), article_list(asset_slug="bitcoin"), article_list(q="a")):
            slow = ArticleSerializer(qs, many=True).data
            fast = articles_representation(article_rows(qs))
            assert render(fast) == render(slow)
            assert fast or data == "edges"


def test_edge_articles_keep_their_mentions_in_slug_order(edges):
    fast = {a["guid"]: a for a in articles_representation(article_rows(article_list()))}
    assert fast["lonely"]["assets"] == []
    assert (fast["lonely"]["summary"], fast["lonely"]["author"]) == ("", "")
    assert [m["slug"] for m in fast["busy"]["assets"]] == ["edge-coin", "tiny-coin"]
    assert fast["busy"]["published_at"] == "2025-12-28T04:00:00Z"
    assert fast["undated"]["published_at"] is None


def test_edge_quotes_render_as_before(edges):
    """The numbers as the endpoint has always written them: floats, null kept."""
    rows = {
        (r["slug"], r["source"]): r
        for r in json.loads(render(market_items_representation(_page(latest_quote_list()))))
    }
    assert rows["edge-coin", "coingecko"]["current_price"] is None
    assert rows["edge-coin", "csv"]["current_price"] == pytest.approx(float(HUGE), rel=1e-14)
    assert rows["edge-coin", "csv"]["last_updated"] == "2025-12-28T05:56:13Z"
    assert rows["tiny-coin", "csv"]["current_price"] == 1e-18
    assert rows["tiny-coin", "csv"]["last_updated"] == "2024-03-10T06:59:59.999999Z"


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("data", ["samples", "edges"])
def test_asset_detail_equals_the_serializers(request, data, zone):
    """LatestSerializer is a ModelSerializer: its decimals are text (REST_FRAMEWORK's default)."""
    request.getfixturevalue("seeded" if data == "samples" else "edges")
    slugs = list(Asset.objects.values_list("slug", flat=True))
    with _in_zone(zone):
        for slug in slugs:
            asset = asset_get(slug=slug)
            identities, quotes = asset.identities.all(), asset.latest_quotes.all()
            assert render(identities_representation(identities)) == render(
                IdentitySerializer(identities, many=True).data
            )
            assert render(latest_representation(quotes)) == render(
                LatestSerializer(quotes, many=True).data
            )
    if data == "edges":
        quotes = asset_get(slug="edge-coin").latest_quotes.filter(source="csv")
        (huge,) = latest_representation(quotes)
        assert huge["volume_24h"] == "0.000000000000000000"
        if connection.vendor == "postgresql":  # SQLite reads decimals through a float
            assert huge["price_usd"] == "123456789012345678901.123456789012345678"


def test_latest_follows_coerce_decimal_to_string(edges, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "COERCE_DECIMAL_TO_STRING": False}
    quotes = asset_get(slug="edge-coin").latest_quotes.all()
    fast = latest_representation(quotes)
    assert render(fast) == render(LatestSerializer(quotes, many=True).data)
    assert isinstance(fast[1]["price_usd"], float)


@pytest.mark.parametrize("data", ["samples", "edges"])
def test_asset_rows_equal_the_serializer(request, data):
    request.getfixturevalue("seeded" if data == "samples" else "edges")
    qs = asset_list()
    assert render(list(qs.values(*AssetSerializer.Meta.fields))) == render(
        AssetSerializer(qs, many=True).data
    )


def test_quantization_rounds_as_the_fields_do():
    """Values with more places than a field keeps (never read from the columns, which keep 18)
    are rounded as DRF rounds them, half to even."""
    asset = Asset(id=1, slug="x", symbol="X", name="X")
    values = [
        Decimal("0.0000000000000000005"),
        Decimal("0.0000000000000000015"),
        Decimal("-2.1140099999999999995"),
        Decimal("87645.123456789012345678901234"),
        3.14,
        7,
        None,
    ]
    at = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    quotes = [
        LatestQuote(id=i, asset=asset, source="csv", observed_at=at, price_usd=v, market_cap=v)
        for i, v in enumerate(values)
    ]
    rows = [
        {
            "id": q.id,
            "source": q.source,
            "asset__symbol": asset.symbol,
            "asset__name": asset.name,
            "asset__slug": asset.slug,
            "price_usd": q.price_usd,
            "market_cap": q.market_cap,
            "volume_24h": None,
            "price_change_24h": None,
            "market_cap_rank": None,
            "observed_at": q.observed_at,
        }
        for q in quotes
    ]
    assert render(market_items_representation(rows)) == render(
        MarketItemSerializer(quotes, many=True).data
    )
    assert render(latest_representation(quotes)) == render(LatestSerializer(quotes, many=True).data)


# What each endpoint answered with before the fast paths: its serializer over its selector.
ENDPOINTS = {
    "/data?": lambda: (MarketItemSerializer, latest_quote_list()),
    "/data?source=csv&name=coin&": lambda: (
        MarketItemSerializer,
        latest_quote_list(sources=["csv"], name="coin"),
    ),
    "/data?source=rss&": lambda: (ArticleSerializer, article_list()),
    "/news?": lambda: (ArticleSerializer, article_list()),
    "/news?asset=bitcoin&": lambda: (ArticleSerializer, article_list(asset_slug="bitcoin")),
    "/assets?": lambda: (AssetSerializer, asset_list()),
}


@pytest.mark.parametrize("url", ENDPOINTS)
def test_endpoints_answer_what_the_serializers_give(client, seeded, edges, url):
    serializer, qs = ENDPOINTS[url]()
    assert qs.count() > 0
    for offset in (0, 100):
        body = client.get(f"{url}limit=100&offset={offset}").json()
        expected = render(serializer(qs[offset : offset + 100], many=True).data)
        assert body["data"] == json.loads(expected)
        assert render(body["data"]) == expected


def test_asset_detail_answers_what_the_serializers_give(client, seeded, edges):
    for slug in ("bitcoin", "edge-coin", "tiny-coin"):
        asset = asset_get(slug=slug)
        body = client.get(f"/assets/{slug}").json()
        assert render(body["identities"]) == render(
            IdentitySerializer(asset.identities.all(), many=True).data
        )
        assert render(body["latest"]) == render(
            LatestSerializer(asset.latest_quotes.all(), many=True).data
        )


@pytest.mark.parametrize(
    "path, params",
    [("/data", {}), ("/data", {"source": "rss"}), ("/news", {}), ("/news", {"asset": "bitcoin"})],
)
def test_a_page_of_100_costs_the_queries_of_a_page_of_10(client, seeded, edges, path, params):
    client.get(path, {**params, "limit": 1})  # warm up (content types, keys)
    counts = []
    for limit in (10, 100):
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(path, {**params, "limit": limit})
        assert response.status_code == 200
        assert len(response.json()["data"]) == min(
            limit, response.json()["pagination"]["total_items"]
        )
        counts.append(len(ctx))
    # The data version, the count, the page (and, for news, the page's mentions).
    assert counts[0] == counts[1] <= 4, counts


@pytest.fixture
def odd_runs(db):
    """Runs the samples do not have: still running, a retry of a failed one (a parent), an
    error message, a start in another zone."""
    from tests.factories import RunFactory

    failed = RunFactory(
        status="failed",
        error_class="SourceUnavailable",
        error_message='upstream said "no" \u2014 twice',
        started_at=dt.datetime(2025, 12, 27, 23, 0, 0, 123456, tzinfo=NEW_YORK),
    )
    RunFactory(status="success", trigger="retry", parent=failed, items_quarantined=3)
    RunFactory(status="running", finished_at=None)


@pytest.mark.parametrize("zone", ZONES)
def test_runs_equal_the_serializer(seeded, odd_runs, zone):
    from runs.api import RUN_LIST_COLUMNS, RunSerializer, runs_representation
    from runs.selectors import run_list

    qs = run_list()
    with _in_zone(zone):
        fast = runs_representation(qs.values(*RUN_LIST_COLUMNS))
        assert render(fast) == render(RunSerializer(qs, many=True).data)
    assert {r["status"] for r in fast} >= {"success", "failed", "running"}
    assert any(r["parent_id"] for r in fast) and any(r["duration_seconds"] is None for r in fast)


def test_runs_endpoint_answers_what_the_serializer_gives(client, auth, seeded, odd_runs):
    from runs.api import RunSerializer
    from runs.selectors import run_list

    body = client.get("/runs", {"limit": 100}, **auth).json()
    assert render(body["data"]) == render(RunSerializer(run_list()[:100], many=True).data)
