"""Which coins a news text mentions: names, tickers, cashtags, everyday words, shared tickers."""

from __future__ import annotations

import pytest

from etl.pipeline.mentions import MentionMatcher

BTC, BCH, ETH, SOL, WSOL, ONE, GAS, SUN, LINK, XRP, SONIC, PI, USDC, BUSDC = range(1, 15)

ASSETS = [
    (BTC, "BTC", "Bitcoin", 1),
    (BCH, "BCH", "Bitcoin Cash", 15),
    (ETH, "ETH", "Ethereum", 2),
    (SOL, "SOL", "Solana", 6),
    (WSOL, "SOL", "Wrapped SOL", 60),
    (ONE, "ONE", "Harmony", 150),
    (GAS, "GAS", "Gas", 300),
    (SUN, "SUN", "Sun Token", 400),
    (LINK, "LINK", "Chainlink", 12),
    (XRP, "XRP", "XRP", 4),
    (SONIC, "S", "Sonic", 80),
    (PI, "PI", "Pi Network", None),
    (USDC, "USDC", "USDC", 7),
    (BUSDC, "USDC", "Bridged USDC", 500),
]


@pytest.fixture(scope="module")
def matcher():
    return MentionMatcher(ASSETS)


def ids(matcher, text: str) -> list[int]:
    return [asset_id for asset_id, _ in matcher.match(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bitcoin rallies past $90k", [(BTC, "name")]),
        ("Ethereum's upgrade ships", [(ETH, "name")]),
        ("Bitcoin\u2019s dominance", [(BTC, "name")]),
        ("pre-Bitcoin money", [(BTC, "name")]),
        ("Chainlink and Bitcoin", [(BTC, "name"), (LINK, "name")]),
    ],
)
def test_names_match_on_word_boundaries(matcher, text, expected):
    assert matcher.match(text) == expected


@pytest.mark.parametrize(
    "text",
    ["bitcoin rallies", "BITCOIN rallies", "Bitcoins everywhere", "MyBitcoin wallet", "Ethereums"],
)
def test_names_are_case_sensitive_and_whole_words(matcher, text):
    assert BTC not in ids(matcher, text)
    assert ETH not in ids(matcher, text)


def test_bitcoin_cash_is_not_also_bitcoin(matcher):
    assert matcher.match("Bitcoin Cash forks again") == [(BCH, "name")]


def test_bitcoin_cash_and_bitcoin_are_both_found_when_both_are_named(matcher):
    assert ids(matcher, "Bitcoin Cash trails Bitcoin") == [BTC, BCH]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BTC hits a new high", [(BTC, "ticker")]),
        ("ETH/BTC ratio falls", [(BTC, "ticker"), (ETH, "ticker")]),
        ("BTC-USD and #ETH", [(BTC, "ticker"), (ETH, "ticker")]),
        ("LINK surges", [(LINK, "ticker")]),
    ],
)
def test_upper_case_tickers_match_beside_punctuation(matcher, text, expected):
    assert matcher.match(text) == expected


@pytest.mark.parametrize("text", ["btc is up", "BTCUSD pair", "stETH yields", "ETHW forks"])
def test_tickers_are_upper_case_whole_words(matcher, text):
    assert ids(matcher, text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$SOL pumps", [(SOL, "cashtag")]),
        ("$sol pumps", [(SOL, "cashtag")]),
        ("Buy $BTC.", [(BTC, "cashtag")]),
        ("$XRP and $ETH", [(ETH, "cashtag"), (XRP, "cashtag")]),
    ],
)
def test_cashtags_match_known_tickers_in_any_case(matcher, text, expected):
    assert matcher.match(text) == expected


@pytest.mark.parametrize("text", ["$$SOL", "US$SOL", "$UNKNOWN rallies", "$5 coffee"])
def test_cashtags_need_a_known_ticker_after_a_single_dollar(matcher, text):
    assert ids(matcher, text) == []


@pytest.mark.parametrize(
    "text",
    [
        "ONE more thing about the market",
        "GAS fees spike on mainnet",
        "SUN is shining",
        "Gas prices",
        "Sonic boom",
        "PI day",
        "S&P 500 falls",
    ],
)
def test_ambiguous_words_alone_are_not_mentions(matcher, text):
    assert ids(matcher, text) == []


@pytest.mark.parametrize(
    ("text", "asset_id"),
    [
        ("$ONE rallies", ONE),
        ("$GAS jumps", GAS),
        ("$SUN", SUN),
        ("$PI listed", PI),
        ("Harmony (ONE) rallies", ONE),
        ("Harmony ONE rallies", ONE),
        ("ONE (Harmony) rallies", ONE),
        ("Harmony ($ONE)", ONE),
        ("Sun Token (SUN) burns", SUN),
        ("Sonic (S) rallies", SONIC),
        ("Pi Network (PI) mainnet", PI),
    ],
)
def test_ambiguous_tickers_count_as_cashtags_or_next_to_the_name(matcher, text, asset_id):
    assert ids(matcher, text) == [asset_id]


def test_shared_ticker_goes_to_the_best_ranked(matcher):
    assert matcher.match("SOL pumps") == [(SOL, "ticker")]
    assert matcher.match("$SOL pumps") == [(SOL, "cashtag")]


def test_shared_ticker_goes_to_the_asset_named_in_the_text(matcher):
    assert matcher.match("Wrapped SOL depegs") == [(WSOL, "name")]
    assert matcher.match("Bridged USDC: $USDC liquidity thins") == [(BUSDC, "name")]


def test_shared_ticker_with_both_names_in_the_text_keeps_both(matcher):
    assert ids(matcher, "Solana and Wrapped SOL") == [SOL, WSOL]


def test_name_equal_to_ticker_matches_once(matcher):
    assert matcher.match("XRP ruling") == [(XRP, "name")]
    assert matcher.match("USDC supply grows") == [(USDC, "name")]


def test_each_asset_is_reported_once(matcher):
    assert matcher.match("Bitcoin, BTC, $BTC and Bitcoin again") == [(BTC, "name")]


def test_no_assets_no_mentions():
    assert MentionMatcher([]).match("Bitcoin $BTC BTC") == []


def test_unranked_assets_lose_shared_tickers_to_ranked_ones():
    matcher = MentionMatcher([(1, "ABC", "Alpha Coin", None), (2, "ABC", "Beta Coin", 99)])

    assert matcher.match("ABC jumps") == [(2, "ticker")]
    assert matcher.match("Alpha Coin (ABC) jumps") == [(1, "name")]


def test_names_with_regex_characters_are_literal():
    matcher = MentionMatcher([(1, "USDT0", "USD\u20ae0", 50), (2, "AB", "A.B (Portal)", 70)])

    assert matcher.match("USD\u20ae0 supply") == [(1, "name")]
    assert matcher.match("A.B (Portal) bridge") == [(2, "name")]
    assert matcher.match("AxB (Portal)") == []


# A cashtag may start with a digit: `$1INCH` is matched as a cashtag mention of 1INCH rather
# than slipping past both the cashtag and the plain-ticker match.
def test_a_ticker_starting_with_a_digit_is_matched_as_a_cashtag():
    matcher = MentionMatcher([(1, "1INCH", "1inch", 90)])

    assert matcher.match("1INCH pumps") == [(1, "ticker")]
    assert matcher.match("$1INCH pumps") == [(1, "cashtag")]
    assert matcher.match("$100 of $1INCH") == [(1, "cashtag")]
