"""The quote loader's page semantics, on whichever database the suite runs (PostgreSQL in CI):
the last row of a repeated (coin, time) wins, two keys naming one asset load as one series,
unresolved keys are quarantined in row order, the latest quote and the run's prices follow the
newest row, and big pages (the plain INSERT) and small ones (the upsert) agree."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from crypto.models import Asset, LatestQuote, Quote, SourceAsset
from etl.pipeline.load import LoadResult, RunSeen
from etl.pipeline.load.quotes import QuoteBatch, QuoteLoader
from etl.pipeline.load.quotes_postgres import OPTIMISTIC_BATCH
from etl.sources.base import MarketItem

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
SOURCE = "csv"


def row(key: str, hour: int, price: str) -> MarketItem:
    return MarketItem(
        source_key=key, symbol=key.upper()[:4], name=key, coingecko_id=None,
        observed_at=T0 + dt.timedelta(hours=hour), price_usd=Decimal(price),
        market_cap=Decimal(price) * 1000, volume_24h=None,
    )  # fmt: skip


@pytest.fixture
def bitcoin() -> Asset:
    """One asset the source names two ways."""
    asset = Asset.objects.create(slug="bitcoin", symbol="BTC", name="Bitcoin")
    for key in ("bitcoin", "btc|bitcoin"):
        SourceAsset.objects.create(
            source=SOURCE, key=key, asset=asset, match_method="manual", confidence=100
        )
    return asset


@pytest.fixture
def ether() -> Asset:
    asset = Asset.objects.create(slug="ethereum", symbol="ETH", name="Ethereum")
    SourceAsset.objects.create(
        source=SOURCE, key="ethereum", asset=asset, match_method="manual", confidence=100
    )
    return asset


def load(items: list[MarketItem], *, ahead: bool = True, seen: RunSeen | None = None):
    """Load one page as a run does: grouped ahead (or not, as a replay), then loaded."""
    loader = QuoteLoader(source=SOURCE, seen=seen)
    good = [({"row": n}, item) for n, item in enumerate(items)]
    bad: list = []
    extras = QuoteLoader.pre_load(good) if ahead else None
    return loader.load(good, extras, bad), bad


def prices(asset: Asset) -> list[tuple[int, Decimal]]:
    return [
        (int((q.observed_at - T0).total_seconds() // 3600), q.price_usd)
        for q in Quote.objects.filter(asset=asset, source=SOURCE).order_by("observed_at")
    ]


@pytest.mark.parametrize("ahead", [True, False])
def test_a_repeated_coin_and_time_keeps_the_last_row(bitcoin, ahead):
    result, bad = load(
        [row("bitcoin", 0, "10"), row("bitcoin", 1, "11"), row("bitcoin", 0, "12")], ahead=ahead
    )
    assert (result.inserted, result.updated, result.unchanged) == (2, 0, 1)
    assert bad == []
    assert prices(bitcoin) == [(0, Decimal(12)), (1, Decimal(11))]


def test_two_keys_naming_one_asset_load_as_one_series(bitcoin, ether):
    seen = RunSeen()
    result, bad = load(
        [
            row("bitcoin", 0, "10"),
            row("ethereum", 0, "2"),
            row("btc|bitcoin", 1, "11"),
            row("btc|bitcoin", 0, "13"),  # the same asset and time again: the last row wins
            row("bitcoin", 2, "14"),
            row("btc|bitcoin", 2, "15"),
        ],
        seen=seen,
    )
    assert bad == []
    assert (result.inserted, result.updated, result.unchanged) == (4, 0, 2)
    assert prices(bitcoin) == [(0, Decimal(13)), (1, Decimal(11)), (2, Decimal(15))]
    latest = LatestQuote.objects.get(asset=bitcoin, source=SOURCE)
    assert (latest.observed_at, latest.price_usd) == (T0 + dt.timedelta(hours=2), Decimal(15))
    assert seen.prices[bitcoin.pk] == (T0 + dt.timedelta(hours=2), Decimal(15))
    assert seen.prices[ether.pk] == (T0, Decimal(2))


def test_the_runs_price_is_the_last_row_of_the_newest_time_across_keys(bitcoin):
    seen = RunSeen()
    load(
        [row("bitcoin", 0, "1"), row("btc|bitcoin", 2, "15"), row("bitcoin", 2, "16")],
        seen=seen,
    )
    assert prices(bitcoin) == [(0, Decimal(1)), (2, Decimal(16))]
    assert seen.prices[bitcoin.pk] == (T0 + dt.timedelta(hours=2), Decimal(16))


def test_unresolved_keys_are_bad_in_row_order_and_the_rest_loads(bitcoin):
    def invalid(hour: int) -> MarketItem:
        item = row("Not a coin id!", hour, "1")
        item.coingecko_id = item.source_key
        return item

    result, bad = load([invalid(0), row("bitcoin", 0, "10"), invalid(1)])
    assert [(raw["row"], code) for raw, code, _ in bad] == [(0, "invalid_key"), (2, "invalid_key")]
    assert (result.inserted, result.updated, result.unchanged) == (1, 0, 0)
    assert prices(bitcoin) == [(0, Decimal(10))]


def test_a_big_page_and_its_replay_agree_with_a_small_page(bitcoin, ether):
    """A big page takes the plain INSERT; the same page again conflicts and takes the upsert,
    which changes only what differs."""
    hours = OPTIMISTIC_BATCH // 2 + 1
    page = [row(key, h, str(h + 1)) for h in range(hours) for key in ("bitcoin", "ethereum")]
    first, _ = load(page)
    assert first == LoadResult(inserted=2 * hours, updated=0, unchanged=0)
    page[5] = row(page[5].source_key, 2, "99")  # ethereum hour 2, corrected
    again, _ = load(page)
    assert again == LoadResult(inserted=0, updated=1, unchanged=2 * hours - 1)
    assert Quote.objects.filter(source=SOURCE).count() == 2 * hours
    assert dict(prices(ether))[2] == Decimal(99)
    latest = LatestQuote.objects.get(asset=ether, source=SOURCE)
    assert latest.observed_at == T0 + dt.timedelta(hours=hours - 1)


def test_the_batch_is_sorted_by_key_and_time_with_one_line_each():
    items = [row("b", 2, "1"), row("a", 1, "2"), row("b", 0, "3"), row("b", 2, "4")]
    batch = QuoteBatch.build(items)
    assert batch.names == ["b", "a"]
    assert batch.counts == [3, 1]
    lines = [line.split("\t")[:4] for line in batch.copy.splitlines()]
    assert [(k, n, price) for k, n, _, price in lines] == [
        ("0", "0", "3"),
        ("0", "1", "4"),
        ("1", "2", "2"),
    ]
    assert batch.lasts == [1, 2]
    assert batch.newest == [
        (T0 + dt.timedelta(hours=2), Decimal(4)),
        (T0 + dt.timedelta(hours=1), Decimal(2)),
    ]
