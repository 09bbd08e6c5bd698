"""Property-based: every normalizer, given any JSON-like item, returns a normalized item or
raises ItemError (a quarantine reason) - never anything else."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from etl.exceptions import ItemError
from etl.sources.base import ArticleItem, MarketItem
from etl.sources.coingecko import CoinGeckoSource
from etl.sources.csv import CsvSource
from etl.sources.rss import RssSource

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def items_with(keys: list[str]):
    plausible = st.one_of(
        json_values,
        st.sampled_from(["bitcoin", "BTC", "2025-12-28T05:56:13.703Z", "87,000", "$1.7T", ""]),
        st.decimals(allow_nan=False, allow_infinity=False).map(str),
    )
    return st.dictionaries(st.sampled_from(keys), plausible, max_size=len(keys)) | json_values


def check(source, item, kind) -> None:
    try:
        result = source.normalize(item)
    except ItemError as exc:
        assert exc.code and exc.reason
        return
    assert isinstance(result, kind)
    if isinstance(result, MarketItem):
        assert result.observed_at.tzinfo is not None
        assert result.observed_at.utcoffset() == dt.timedelta(0)
        for value in (result.price_usd, result.market_cap, result.volume_24h):
            assert value is None or (isinstance(value, Decimal) and value.is_finite())
        assert result.source_key


@settings(max_examples=300, deadline=None)
@given(items_with([f.name for f in CoinGeckoSource.schema] + ["roi", "image"]))
def test_coingecko_normalize_only_raises_item_errors(item):
    check(CoinGeckoSource(base_url="http://x", api_key="", pages=1, per_page=1), item, MarketItem)


@settings(max_examples=300, deadline=None)
@given(items_with(["feed", "id", "link", "title", "summary", "author", "published", "tags"]))
def test_rss_normalize_only_raises_item_errors(item):
    check(RssSource(feed_urls=["http://x/feed"]), item, ArticleItem)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(max_size=12), min_size=1, max_size=6),
    st.lists(st.text(max_size=12), max_size=7),
)
def test_csv_normalize_only_raises_item_errors(header, values):
    item = {
        "file": "x.csv",
        "row": 1,
        "header": header,
        "values": values,
        "mtime": "2025-12-28T00:00:00+00:00",
    }
    check(CsvSource(drop_dir="/tmp", page_rows=10), item, MarketItem)
    for _item, result in CsvSource(drop_dir="/tmp", page_rows=10).normalize_many([item]):
        assert isinstance(result, MarketItem | ItemError)
