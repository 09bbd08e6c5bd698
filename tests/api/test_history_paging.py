"""/assets/{slug}/history pages by cursor: every point once across pages, buckets equal to an
unbounded aggregate, and a page's cost that does not grow with the history."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Avg, Count, Max, Min
from django.db.models.functions import TruncDay, TruncHour
from django.test.utils import CaptureQueriesContext
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.history import CURSOR_PATTERN, HistoryCursor, cursor_decode, cursor_encode
from crypto.models import Asset, LatestQuote, Quote

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def series(hours: int, *, every: dict[str, int] | None = None) -> Asset:
    """An asset with quotes from two sources: coingecko every hour, csv every 3 hours (the
    same instants every third hour, so that ties across sources are paged)."""
    every = every or {"coingecko": 1, "csv": 3}
    asset = Asset.objects.create(slug="bitcoin", symbol="BTC", name="Bitcoin")
    rng = random.Random(hours)
    quotes = [
        Quote(
            asset=asset,
            source=source,
            observed_at=NOW - dt.timedelta(hours=h, minutes=rng.choice([0, 0, 20])),
            price_usd=Decimal(rng.randrange(80_000, 90_000)),
            market_cap=Decimal(10**12),
            ingested_at=NOW,
        )
        for source, step in every.items()
        for h in range(0, hours, step)
    ]
    Quote.objects.bulk_create(quotes, ignore_conflicts=True)
    for source in every:
        newest = Quote.objects.filter(asset=asset, source=source).latest("observed_at")
        LatestQuote.objects.create(
            asset=asset, source=source, observed_at=newest.observed_at, price_usd=newest.price_usd
        )
    return asset


def pages(client, params: dict) -> list[list[dict]]:
    found = []
    url, query = "/assets/bitcoin/history", dict(params)
    while url:
        response = client.get(url, query)
        assert response.status_code == 200, response.content
        body = response.json()
        found.append(body["data"])
        url, query = body["next"], None
        if url:
            assert response["Link"] == f'<{url}>; rel="next"'
        assert len(found) < 100
    return found


@pytest.mark.parametrize("interval", ["raw", "hour", "day"])
def test_paging_gives_every_point_once_in_order(client, interval):
    series(24 * 20)
    whole = client.get("/assets/bitcoin/history", {"interval": interval, "limit": 5000})
    everything = whole.json()["data"]
    assert whole.json()["next"] is None  # not a full page: nothing after it
    paged = pages(client, {"interval": interval, "limit": 7})
    assert all(len(page) == 7 for page in paged[:-1])
    assert [p for page in paged for p in page] == everything
    keys = [(p["time"], p["source"]) for p in everything]
    assert len(set(keys)) == len(keys)


def reference(asset, interval, *, start=None, end=None, limit):
    """The buckets as one unbounded aggregate over all the asset's quotes."""
    qs = Quote.objects.filter(asset=asset)
    if start:
        qs = qs.filter(observed_at__gte=start)
    if end:
        qs = qs.filter(observed_at__lt=end)
    trunc = TruncHour if interval == "hour" else TruncDay
    rows = (
        qs.annotate(bucket=trunc("observed_at"))
        .values("source", "bucket")
        .annotate(p=Avg("price_usd"), lo=Min("price_usd"), hi=Max("price_usd"), n=Count("id"))
        .order_by("-bucket", "source")[:limit]
    )
    return [(r["bucket"], r["source"], r["p"], r["lo"], r["hi"], r["n"]) for r in rows]


def test_bounded_buckets_equal_an_unbounded_aggregate():
    from crypto.history import asset_history

    asset = series(24 * 40)
    rng = random.Random(3)
    for _ in range(40):
        interval = rng.choice(["hour", "day"])
        limit = rng.choice([1, 2, 5, 30, 500])
        end = rng.choice([None, NOW - dt.timedelta(hours=rng.randrange(24 * 45))])
        start = rng.choice([None, NOW - dt.timedelta(hours=rng.randrange(24 * 45))])
        if start and end and start >= end:
            continue
        got = asset_history(
            asset=asset, source=None, start=start, end=end, interval=interval, limit=limit
        )
        expected = reference(asset, interval, start=start, end=end, limit=limit)
        assert [
            (p["time"], p["source"], p["price_usd"], p["price_min"], p["price_max"], p["samples"])
            for p in got
        ] == expected, (interval, limit, start, end)


@pytest.mark.parametrize(
    "cursor",
    ["nope", "e30", "WyJ4IiwiY3N2Il0", "1766901363663000.rss", "12.csv\n", " 12.csv", "1.2.csv"],
)
def test_a_cursor_that_is_not_ours_is_a_400_naming_it(client, cursor):
    series(5)
    response = client.get("/assets/bitcoin/history", {"cursor": cursor})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "cursor" in response.content.decode()


def test_every_cursor_the_schema_allows_is_taken_and_round_trips(client):
    """The schema's pattern for `cursor` is exactly the cursors there are: any text that
    matches it is answered (a 200), and a cursor made from a point decodes to that point."""
    series(5)
    newest = LatestQuote.objects.get(source="coingecko").observed_at
    assert cursor_decode(cursor_encode(HistoryCursor(newest, "coingecko"))).time == newest
    pattern = next(
        p["schema"]["pattern"]
        for p in client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"][
            "/assets/{slug}/history"
        ]["get"]["parameters"]
        if p["name"] == "cursor"
    )
    assert pattern == CURSOR_PATTERN

    @settings(max_examples=40, deadline=None, database=None)
    @given(
        cursor=st.from_regex(CURSOR_PATTERN, fullmatch=True),
        interval=st.sampled_from(["raw", "day"]),
    )
    def answered(cursor, interval):
        response = client.get("/assets/bitcoin/history", {"cursor": cursor, "interval": interval})
        assert response.status_code == 200, (cursor, response.content[:200])
        point = cursor_decode(cursor)
        assert cursor_decode(cursor_encode(point)) == point

    answered()


@pytest.mark.parametrize("interval", ["raw", "day"])
def test_a_page_costs_the_same_queries_for_a_week_and_for_a_year(client, interval):
    def cost() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/assets/bitcoin/history", {"interval": interval, "limit": 10})
        assert response.status_code == 200 and len(response.json()["data"]) == 10
        return len(captured)

    series(24 * 6)
    short = cost()
    Asset.objects.all().delete()
    series(24 * 365)
    assert cost() == short


def test_the_fast_representation_equals_the_serializers(client):
    """Raw and bucketed points of every magnitude, tiny prices included: field for field
    what PointSerializer gives, rendered to the same JSON."""
    from rest_framework.renderers import JSONRenderer

    from crypto.history import asset_history
    from crypto.serializers import PointSerializer, points_representation

    asset = series(24 * 3)
    rng = random.Random(11)
    for quote in Quote.objects.filter(asset=asset)[:40]:
        quote.price_usd = Decimal(rng.choice(["0.000007212345678901234567", "87645.5", "1e-17"]))
        quote.market_cap = None if rng.random() < 0.3 else Decimal("1750000002240.123456789")
        quote.save()
    for interval in ("raw", "hour", "day"):
        points = asset_history(
            asset=asset, source=None, start=None, end=None, interval=interval, limit=5000
        )
        slow = PointSerializer(points, many=True).data
        fast = points_representation(points)
        assert JSONRenderer().render(fast) == JSONRenderer().render(slow), interval
