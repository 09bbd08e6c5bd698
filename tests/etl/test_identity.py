"""Identity resolution: one canonical Asset per coin, whatever the source calls it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from crypto.models import Asset, SourceAsset
from etl.pipeline.identity import IdentityResolver
from etl.sources.base import MarketItem

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2025, 12, 28, 6, 0, tzinfo=dt.UTC)


def market(symbol: str, name: str, coin_id: str | None = None) -> MarketItem:
    return MarketItem(
        source_key=coin_id or f"{symbol.lower()}|{name.lower()}",
        symbol=symbol,
        name=name,
        coingecko_id=coin_id,
        observed_at=NOW,
        price_usd=Decimal(1),
    )


def asset(slug: str, symbol: str, name: str) -> Asset:
    return Asset.objects.create(slug=slug, symbol=symbol, name=name)


def resolve(resolver: IdentityResolver, items: list[MarketItem]):
    """(asset id, item) pairs and (item, error) pairs, as the quote loader splits a page."""
    asset_ids, errors = resolver.resolve_keys(items)
    resolved = [(asset_ids[i.source_key], i) for i in items if i.source_key in asset_ids]
    failed = [(i, errors[i.source_key]) for i in items if i.source_key not in asset_ids]
    return resolved, failed


def codes(failed) -> list[str]:
    return [error.code for _, error in failed]


@pytest.fixture
def coins():
    return {
        a.slug: a
        for a in [
            asset("bitcoin", "BTC", "Bitcoin"),
            asset("solana", "SOL", "Solana"),
            asset("wrapped-solana", "SOL", "Wrapped SOL"),
            asset("tether-usd", "USDT", "Tether USD"),
            asset("tether-usdt", "USDT", "Tether USDt"),
            asset("usd-coin", "USDC", "USD Coin"),
        ]
    }


# --- CoinGecko ids ----------------------------------------------------------------------------


def test_coingecko_ids_create_assets_authoritatively():
    items = [market("BTC", "Bitcoin", "bitcoin"), market("ETH", "Ethereum", "ethereum")]

    resolved, failed = resolve(IdentityResolver(source="coingecko"), items)

    assert failed == []
    assert set(Asset.objects.values_list("slug", "symbol", "name")) == {
        ("bitcoin", "BTC", "Bitcoin"),
        ("ethereum", "ETH", "Ethereum"),
    }
    by_slug = {a.slug: a.pk for a in Asset.objects.all()}
    assert resolved == [(by_slug["bitcoin"], items[0]), (by_slug["ethereum"], items[1])]
    assert set(SourceAsset.objects.values_list("source", "key", "match_method", "confidence")) == {
        ("coingecko", "bitcoin", "authoritative", 100),
        ("coingecko", "ethereum", "authoritative", 100),
    }


def test_coingecko_follows_renames_and_ticker_changes(coins):
    resolve(IdentityResolver(source="coingecko"), [market("MATIC2", "Bitcoin Prime", "bitcoin")])

    coins["bitcoin"].refresh_from_db()
    assert (coins["bitcoin"].symbol, coins["bitcoin"].name) == ("MATIC2", "Bitcoin Prime")


def test_coingecko_reuses_existing_assets(coins):
    resolved, _ = resolve(IdentityResolver(source="coingecko"), [market("SOL", "Solana", "solana")])

    assert [asset_id for asset_id, _ in resolved] == [coins["solana"].pk]
    assert Asset.objects.count() == len(coins)


def test_the_same_key_twice_in_a_batch_is_one_identity(coins):
    items = [market("BTC", "Bitcoin", "bitcoin"), market("BTC", "Bitcoin", "bitcoin")]

    resolved, failed = resolve(IdentityResolver(source="csv"), items)

    assert failed == []
    assert [asset_id for asset_id, _ in resolved] == [coins["bitcoin"].pk] * 2
    assert SourceAsset.objects.filter(source="csv").count() == 1


def test_csv_coin_id_matching_the_asset_resolves_by_id(coins):
    item = market("BTC", "Bitcoin Core", "bitcoin")

    resolved, failed = resolve(IdentityResolver(source="csv"), [item])

    assert (resolved, failed) == ([(coins["bitcoin"].pk, item)], [])
    identity = SourceAsset.objects.get(source="csv", key="bitcoin")
    assert (identity.match_method, identity.confidence) == ("coingecko_id", 100)
    coins["bitcoin"].refresh_from_db()
    assert coins["bitcoin"].name == "Bitcoin"  # only CoinGecko renames


def test_csv_coin_id_whose_symbol_contradicts_the_asset_is_a_conflict(coins):
    item = market("BCH", "Bitcoin Cash", "bitcoin")

    resolved, failed = resolve(IdentityResolver(source="csv"), [item])

    assert resolved == []
    assert codes(failed) == ["identity_conflict"]
    assert "bitcoin" in failed[0][1].reason and "BCH" in failed[0][1].reason
    assert not SourceAsset.objects.filter(source="csv").exists()


def test_csv_coin_id_without_symbol_trusts_the_id(coins):
    resolved, failed = resolve(IdentityResolver(source="csv"), [market("", "", "solana")])

    assert failed == []
    assert [asset_id for asset_id, _ in resolved] == [coins["solana"].pk]


@pytest.mark.parametrize("coin_id", ["bit coin", "bitcoin!", "-bitcoin", "BITCOIN", "x" * 201])
def test_an_invalid_coin_id_is_rejected(coins, coin_id):
    resolved, failed = resolve(IdentityResolver(source="csv"), [market("BTC", "Bitcoin", coin_id)])

    assert resolved == []
    assert codes(failed) == ["invalid_key"]


# A non-authoritative source never mints a duplicate of a coin we know: a CSV that puts the
# ticker in its id column (`btc,BTC,Bitcoin`) resolves to `bitcoin` (same symbol and name) and
# never creates a second "Bitcoin" asset with slug `btc`.
def test_csv_coin_id_never_creates_a_duplicate_of_a_known_coin(coins):
    item = market("BTC", "Bitcoin", "btc")

    resolved, failed = resolve(IdentityResolver(source="csv"), [item])

    assert Asset.objects.filter(name="Bitcoin").count() == 1
    assert not Asset.objects.filter(slug="btc").exists()
    assert resolved == [(coins["bitcoin"].pk, item)] or codes(failed) == ["unknown_asset"]


# --- symbol plus fuzzy name -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Solana", "solana"),
        ("solana", "solana"),
        ("Wrapped SOL", "wrapped-solana"),
        ("Wrapped Solana", "wrapped-solana"),
    ],
)
def test_symbol_and_name_pick_the_right_one_among_same_symbol_assets(coins, name, slug):
    item = market("SOL", name)

    resolved, failed = resolve(IdentityResolver(source="csv"), [item])

    assert (resolved, failed) == ([(coins[slug].pk, item)], [])
    identity = SourceAsset.objects.get(source="csv", key=item.source_key)
    assert identity.match_method == "symbol_name"
    assert identity.confidence >= 88


def test_a_symbol_alone_never_decides(coins):
    resolved, failed = resolve(IdentityResolver(source="csv"), [market("BTC", "")])

    assert resolved == []
    assert codes(failed) == ["ambiguous_identity"]


def test_two_close_candidates_are_ambiguous(coins):
    resolved, failed = resolve(IdentityResolver(source="csv"), [market("USDT", "Tether US")])

    assert resolved == []
    assert codes(failed) == ["ambiguous_identity"]
    assert "tether-usd" in failed[0][1].reason and "tether-usdt" in failed[0][1].reason


def test_a_weak_name_match_is_unresolved(coins):
    resolved, failed = resolve(IdentityResolver(source="csv"), [market("USDC", "USDC")])

    assert resolved == []
    assert codes(failed) == ["unresolved_identity"]


def test_the_minimum_score_is_configurable(coins):
    item = market("USDC", "USDC")

    resolved, _ = resolve(IdentityResolver(source="csv", min_score=40), [item])

    assert resolved == [(coins["usd-coin"].pk, item)]


def test_an_unknown_symbol_is_quarantined_not_created(coins):
    resolved, failed = resolve(IdentityResolver(source="csv"), [market("NEWCOIN", "New Coin")])

    assert resolved == []
    assert codes(failed) == ["unknown_asset"]
    assert Asset.objects.count() == len(coins)


def test_a_batch_splits_into_resolved_and_failed_in_order(coins):
    items = [
        market("BTC", "Bitcoin"),
        market("ZZZ", "Zed"),
        market("SOL", "Solana"),
        market("BTC", "", "bitcoin"),
        market("USDT", ""),
    ]

    resolved, failed = resolve(IdentityResolver(source="csv"), items)

    assert resolved == [
        (coins["bitcoin"].pk, items[0]),
        (coins["solana"].pk, items[2]),
        (coins["bitcoin"].pk, items[3]),
    ]
    assert [(item, error.code) for item, error in failed] == [
        (items[1], "unknown_asset"),
        (items[4], "ambiguous_identity"),
    ]


# --- remembered identities --------------------------------------------------------------------


def resolvable_batch() -> list[MarketItem]:
    return [
        market("BTC", "Bitcoin"),
        market("SOL", "Wrapped SOL"),
        market("USDC", "USD Coin"),
        market("SOL", "Solana", "solana"),
    ]


def test_a_repeated_batch_costs_no_query_on_the_same_resolver(coins, django_assert_num_queries):
    resolver = IdentityResolver(source="csv")
    first, _ = resolve(resolver, resolvable_batch())

    with django_assert_num_queries(0):
        again, failed = resolve(resolver, resolvable_batch())

    assert failed == []
    assert again == first


def test_a_new_resolver_finds_known_keys_in_one_query(coins, django_assert_num_queries):
    first, _ = resolve(IdentityResolver(source="csv"), resolvable_batch())

    with django_assert_num_queries(1):
        again, failed = resolve(IdentityResolver(source="csv"), resolvable_batch())

    assert failed == []
    assert again == first


def test_a_remembered_identity_wins_over_a_new_match(coins):
    resolve(IdentityResolver(source="csv"), [market("SOL", "Solana")])
    SourceAsset.objects.filter(source="csv").update(asset=coins["wrapped-solana"])  # an operator

    resolved, _ = resolve(IdentityResolver(source="csv"), [market("SOL", "Solana")])

    assert [asset_id for asset_id, _ in resolved] == [coins["wrapped-solana"].pk]


def test_identities_are_per_source(coins):
    resolve(IdentityResolver(source="csv"), [market("BTC", "Bitcoin")])

    resolved, failed = resolve(IdentityResolver(source="other"), [market("BTC", "Bitcoin")])

    assert failed == []
    assert [asset_id for asset_id, _ in resolved] == [coins["bitcoin"].pk]
    assert set(SourceAsset.objects.values_list("source", flat=True)) == {"csv", "other"}
