"""The CSV drop source on its own: header mapping, encodings, paging and resumable cursors."""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from etl.exceptions import ItemError, SourceConfigError
from etl.sources.csv import CsvSource, column_map, normalize_header

MTIME = dt.datetime(2025, 12, 28, 6, 0, tzinfo=dt.UTC)


@pytest.fixture
def drop(tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def write(folder, name: str, content: str | bytes, *, mtime: dt.datetime | None = MTIME):
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return path


def append(path, content: str | bytes) -> None:
    with path.open("ab") as fh:
        fh.write(content.encode() if isinstance(content, str) else content)


def fetch(folder, cursor: dict | None = None, page_rows: int | None = None) -> list:
    return list(CsvSource(drop_dir=folder, page_rows=page_rows).fetch(cursor or {}))


def rows_of(pages) -> list[tuple[int, list[str]]]:
    return [(item["row"], item["values"]) for page in pages for item in page.items]


def normalized(pages) -> list:
    source = CsvSource(drop_dir="/nonexistent")
    return [source.normalize(item) for page in pages for item in page.items]


def item(header: list[str], values: list[str], row: int = 1) -> dict:
    return {
        "file": "x.csv",
        "row": row,
        "header": header,
        "values": values,
        "mtime": MTIME.isoformat(),
    }


def normalize(header: list[str], values: list[str]):
    return CsvSource(drop_dir="/nonexistent").normalize(item(header, values))


# --- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "canonical"),
    [
        ("coin_id", "coin_id"),
        ("id", "coin_id"),
        ("ID", "coin_id"),
        ("symbol", "symbol"),
        ("ticker", "symbol"),
        ("Ticker", "symbol"),
        ("name", "name"),
        ("coin_name", "name"),
        ("Coin Name", "name"),
        ("price", "price_usd"),
        ("price_usd", "price_usd"),
        ("usd_price", "price_usd"),
        ("Price (USD)", "price_usd"),
        ("  PRICE USD ", "price_usd"),
        ("market_cap", "market_cap"),
        ("cap", "market_cap"),
        ("Market Cap", "market_cap"),
        ("volume", "volume_24h"),
        ("Volume 24h", "volume_24h"),
        ("timestamp", "observed_at"),
        ("last_updated", "observed_at"),
        ("Last Updated", "observed_at"),
        ("\ufeffcoin_id", "coin_id"),
    ],
)
def test_header_aliases_map_to_canonical_fields(column, canonical):
    assert column_map((column,)) == {canonical: 0}


def test_normalize_header_folds_case_spaces_and_punctuation():
    assert normalize_header("Price (USD)") == "price_usd"
    assert normalize_header("\ufeffCoin ID") == "coin_id"
    assert normalize_header("  24h Volume  ") == "24h_volume"


def test_first_column_wins_when_two_map_to_the_same_field():
    assert column_map(("price", "price_usd", "symbol")) == {"price_usd": 0, "symbol": 2}


def test_unknown_columns_are_ignored():
    assert column_map(("notes", "symbol", "price", "exchange")) == {"symbol": 1, "price_usd": 2}


@pytest.mark.parametrize(
    "header",
    [
        "coin_id,symbol,name,price,market_cap,volume,timestamp",
        "id,ticker,coin_name,price_usd,cap,volume,last_updated",
        "ID,Ticker,Coin Name,Price (USD),Market Cap,Volume,Last Updated",
        "coin_id,symbol,name,usd_price,market_cap,volume,timestamp",
    ],
)
def test_a_row_reads_the_same_whatever_the_header_spelling(drop, header):
    write(drop, "a.csv", f"{header}\nbitcoin,btc,Bitcoin,87645.5,1.7T,$42B,2025-12-28T05:56:13Z\n")

    [market] = normalized(fetch(drop))

    assert market.source_key == "bitcoin"
    assert market.coingecko_id == "bitcoin"
    assert (market.symbol, market.name) == ("BTC", "Bitcoin")
    assert market.price_usd == Decimal("87645.5")
    assert market.market_cap == Decimal("1.7e12")
    assert market.volume_24h == Decimal("4.2e10")
    assert market.observed_at == dt.datetime(2025, 12, 28, 5, 56, 13, tzinfo=dt.UTC)


# --- shapes of files --------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_other_delimiters_are_sniffed(drop, delimiter):
    lines = ["symbol;name;price", "BTC;Bitcoin;87645,5", "ETH;Ethereum;2936"]
    write(drop, "a.csv", "\n".join(line.replace(";", delimiter) for line in lines) + "\n")

    markets = normalized(fetch(drop))

    assert [(m.symbol, m.price_usd) for m in markets] == [
        ("BTC", Decimal("87645.5")),
        ("ETH", Decimal("2936")),
    ]


def test_utf8_bom_is_ignored(drop):
    write(drop, "a.csv", b"\xef\xbb\xbfcoin_id,symbol,price\nbitcoin,btc,1\n")

    [page] = fetch(drop)

    assert page.items[0]["header"] == ["coin_id", "symbol", "price"]
    assert normalized([page])[0].source_key == "bitcoin"


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_windows_and_latin1_bytes_do_not_lose_the_row(drop, encoding):
    name = "Caf\u00e9 \u00c9toile" if encoding == "latin-1" else "Caf\u00e9 \u20ac Coin"
    write(
        drop,
        "a.csv",
        f"symbol,name,price\nBTC,Bitcoin,1\nCAFE,{name},2\nETH,Ether,3\n".encode(encoding),
    )

    markets = normalized(fetch(drop))

    assert [(m.symbol, m.name) for m in markets] == [
        ("BTC", "Bitcoin"),
        ("CAFE", name),
        ("ETH", "Ether"),
    ]


def test_one_undecodable_row_in_a_utf8_file_is_still_read(drop):
    write(
        drop,
        "a.csv",
        b"symbol,name,price\nBTC,Bitcoin,1\nXYZ,Bad \x81\xe9,2\nETH,Ether,3\n",
    )

    markets = normalized(fetch(drop))

    assert [m.symbol for m in markets] == ["BTC", "XYZ", "ETH"]
    assert markets[1].name.startswith("Bad ")


def test_blank_lines_are_skipped_and_not_counted(drop):
    write(drop, "a.csv", "\n\nsymbol,name,price\n\nBTC,Bitcoin,1\n\n   \nETH,Ether,2\n\n")

    assert rows_of(fetch(drop)) == [(1, ["BTC", "Bitcoin", "1"]), (2, ["ETH", "Ether", "2"])]


def test_crlf_line_endings_and_blank_lines_give_the_same_rows(drop):
    write(drop, "a.csv", "symbol,name,price\r\nBTC,Bitcoin,1\r\n\r\nETH,Ether,2\r\n")

    assert rows_of(fetch(drop)) == [(1, ["BTC", "Bitcoin", "1"]), (2, ["ETH", "Ether", "2"])]


def test_quoted_field_with_a_newline_is_one_row(drop):
    write(drop, "a.csv", 'symbol,name,price\nBTC,"Bit\ncoin",1\nETH,Ether,2\n')

    assert rows_of(fetch(drop)) == [(1, ["BTC", "Bit\ncoin", "1"]), (2, ["ETH", "Ether", "2"])]
    assert normalized(fetch(drop))[0].name == "Bit coin"


def test_a_last_row_without_trailing_newline_is_read(drop):
    # An old, finished file: its last line simply has no line break.
    old = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    write(drop, "a.csv", "symbol,name,price\nBTC,Bitcoin,1\nETH,Ethereum,2936", mtime=old)

    markets = normalized(fetch(drop))

    assert [(m.symbol, m.price_usd) for m in markets] == [
        ("BTC", Decimal(1)),
        ("ETH", Decimal(2936)),
    ]


def test_a_row_cut_short_is_quarantined_as_malformed(drop):
    write(drop, "a.csv", "symbol,name,price\nBTC,Bitcoin,1\nETH,Ether")
    source = CsvSource(drop_dir=drop)

    first, cut = fetch(drop)[0].items

    assert source.normalize(first).symbol == "BTC"
    with pytest.raises(ItemError) as caught:
        source.normalize(cut)
    assert caught.value.code == "malformed_row"
    assert "row 2" in caught.value.reason


# A file still being written is read only up to its last complete line: a row cut inside its
# last field would otherwise be ingested with a wrong value (ETH at $20 instead of $2000) and
# its remainder would arrive later as a malformed row of its own.
def test_a_row_being_written_is_not_ingested_half_written(drop):
    path = write(drop, "a.csv", "symbol,name,price\nBTC,Bitcoin,87645\nETH,Ethereum,20", mtime=None)
    pages = fetch(drop)
    append(path, "00\nSOL,Solana,125\n")
    pages += fetch(drop, pages[-1].cursor)

    prices = {m.symbol: m.price_usd for m in normalized(pages)}

    assert prices == {"BTC": Decimal(87645), "ETH": Decimal(2000), "SOL": Decimal(125)}
    assert rows_of(pages)[-2:] == [(2, ["ETH", "Ethereum", "2000"]), (3, ["SOL", "Solana", "125"])]


@pytest.mark.parametrize("content", [b"", b"\n\n\n", b"\xef\xbb\xbf", b"   \r\n\r\n"])
def test_an_empty_file_is_an_error_page(drop, content):
    write(drop, "empty.csv", content)

    [page] = fetch(drop)

    assert "empty.csv" in page.error
    assert page.items == []
    assert page.cursor == {"files": {}}


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("symbol,name,market_cap", "blank price"),
        ("name,price,volume", "neither a coin id nor a symbol"),
    ],
)
def test_rows_under_an_unusable_header_are_read_to_be_quarantined(drop, header, problem):
    """The source does not refuse a header: drift detection explains it, and a mapping
    accepted later makes the rows readable by replay. Until then they are quarantined."""
    write(drop, "a.csv", f"{header}\nBTC,1,2\n")

    [page] = fetch(drop)

    assert not page.error and len(page.items) == 1
    with pytest.raises(ItemError, match=problem):
        CsvSource(drop_dir=drop).normalize(page.items[0])


def test_a_file_with_unknown_columns_does_not_stop_the_others(drop):
    write(drop, "a_bad.csv", "foo,bar\n1,2\n")
    write(drop, "b_good.csv", "symbol,name,price\nBTC,Bitcoin,1\n")

    bad, good = fetch(drop)

    assert not bad.error and not good.error
    assert list(good.cursor["files"]) == ["a_bad.csv", "b_good.csv"]
    assert rows_of([good]) == [(1, ["BTC", "Bitcoin", "1"])]


def test_missing_folder_is_a_configuration_error(tmp_path):
    with pytest.raises(SourceConfigError, match="CSV_DROP_DIR"):
        fetch(tmp_path / "nope")


def test_only_csv_files_are_read_in_name_order(drop):
    write(drop, "b.csv", "symbol,name,price\nBBB,Bee,2\n")
    write(drop, "a.csv", "symbol,name,price\nAAA,Aye,1\n")
    write(drop, "notes.txt", "symbol,name,price\nTXT,Text,3\n")

    assert [v[0] for _, v in rows_of(fetch(drop))] == ["AAA", "BBB"]


# --- resuming ---------------------------------------------------------------------------------

HEADER = "symbol,name,price\n"


def csv_rows(first: int, last: int) -> str:
    return "".join(f"S{i},Coin {i},{i}\n" for i in range(first, last + 1))


def test_appended_rows_are_the_only_ones_read_again(drop):
    path = write(drop, "a.csv", HEADER + csv_rows(1, 3))
    first = fetch(drop)
    append(path, csv_rows(4, 5))

    again = fetch(drop, first[-1].cursor)

    assert [row for row, _ in rows_of(first)] == [1, 2, 3]
    assert rows_of(again) == [(4, ["S4", "Coin 4", "4"]), (5, ["S5", "Coin 5", "5"])]
    assert again[-1].cursor["files"]["a.csv"]["row"] == 5


def test_row_numbers_stay_absolute_across_blank_lines_and_resumes(drop):
    path = write(drop, "a.csv", HEADER + "\nS1,Coin 1,1\n\n")
    first = fetch(drop)
    append(path, "\n\nS2,Coin 2,2\n")
    second = fetch(drop, first[-1].cursor)
    append(path, "S3,Coin 3,3\n")
    third = fetch(drop, second[-1].cursor)

    assert [row for row, _ in rows_of(first + second + third)] == [1, 2, 3]


def test_appended_blank_lines_advance_the_cursor_without_rows(drop):
    path = write(drop, "a.csv", HEADER + csv_rows(1, 1))
    first = fetch(drop)
    append(path, "\n\n")

    [page] = fetch(drop, first[-1].cursor)

    assert page.items == []
    assert fetch(drop, page.cursor) == []


def test_an_unchanged_file_yields_no_pages(drop):
    write(drop, "a.csv", HEADER + csv_rows(1, 3))
    first = fetch(drop)

    assert fetch(drop, first[-1].cursor) == []


def test_the_cursor_survives_a_json_round_trip(drop):
    path = write(drop, "a.csv", HEADER + csv_rows(1, 2))
    cursor = json.loads(json.dumps(fetch(drop)[-1].cursor))
    append(path, csv_rows(3, 3))

    assert [row for row, _ in rows_of(fetch(drop, cursor))] == [3]


@pytest.mark.parametrize(
    "rewritten",
    [
        HEADER + "S1,Coin 1,9\n" + csv_rows(2, 3),  # same size, one value changed
        HEADER + csv_rows(1, 1),  # shorter
        HEADER.replace("price", "usd_price") + csv_rows(1, 4),  # new header, longer
    ],
    ids=["same-size", "shorter", "new-header"],
)
def test_a_rewritten_file_is_read_from_the_start(drop, rewritten):
    path = write(drop, "a.csv", HEADER + csv_rows(1, 3))
    cursor = fetch(drop)[-1].cursor
    path.write_text(rewritten)

    pages = fetch(drop, cursor)

    assert rows_of(pages)[0][0] == 1
    assert len(rows_of(pages)) == rewritten.count("\n") - 1


def test_each_file_keeps_its_own_cursor(drop):
    write(drop, "a.csv", HEADER + csv_rows(1, 2))
    b = write(drop, "b.csv", HEADER + csv_rows(1, 3))
    cursor = fetch(drop)[-1].cursor
    assert set(cursor["files"]) == {"a.csv", "b.csv"}
    append(b, csv_rows(4, 4))

    pages = fetch(drop, cursor)

    assert [(p.items[0]["file"], p.items[0]["row"]) for p in pages] == [("b.csv", 4)]
    assert pages[-1].cursor["files"]["a.csv"] == cursor["files"]["a.csv"]


def test_pages_split_by_page_rows(drop):
    write(drop, "a.csv", HEADER + csv_rows(1, 7))

    pages = fetch(drop, page_rows=3)

    assert [[row for row, _ in rows_of([p])] for p in pages] == [[1, 2, 3], [4, 5, 6], [7]]
    assert [p.ref for p in pages] == ["a.csv rows 1-3", "a.csv rows 4-6", "a.csv rows 7-7"]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_the_cursor_after_page_k_resumes_at_the_next_row(drop, k):
    write(drop, "a.csv", HEADER + csv_rows(1, 10))
    pages = fetch(drop, page_rows=3)

    rest = fetch(drop, pages[k - 1].cursor, page_rows=3)

    assert [row for row, _ in rows_of(rest)] == list(range(k * 3 + 1, 11))
    assert rows_of(pages[:k]) + rows_of(rest) == rows_of(pages)


def test_a_crash_mid_file_then_an_append_reads_every_row_once(drop):
    path = write(drop, "a.csv", HEADER + csv_rows(1, 5))
    committed = fetch(drop, page_rows=2)[0]  # only the first page was committed
    append(path, csv_rows(6, 6))

    rest = fetch(drop, committed.cursor, page_rows=2)

    assert [row for row, _ in rows_of([committed, *rest])] == [1, 2, 3, 4, 5, 6]


# When the row count is a multiple of page_rows, the last full page ends the read: no extra
# empty "(no new rows)" page follows it.
def test_no_empty_trailing_page_when_rows_fill_the_last_page(drop):
    write(drop, "a.csv", HEADER + csv_rows(1, 6))

    pages = fetch(drop, page_rows=3)

    assert [p.ref for p in pages] == ["a.csv rows 1-3", "a.csv rows 4-6"]


def test_items_can_be_rebuilt_from_the_stored_raw_record(drop):
    write(drop, "a.csv", 'symbol;name;price\nBTC;"Bit\ncoin";1\n\nETH;Ether;"2,5"\nSOL;Sol;3\n')

    for page in fetch(drop, page_rows=2):
        raw = json.loads(json.dumps(page.raw))
        rebuilt = CsvSource(drop_dir=drop).items_from_raw(raw, page.raw_body)
        assert rebuilt == page.items


# --- normalize --------------------------------------------------------------------------------


def test_rows_without_coin_id_are_keyed_by_symbol_and_name():
    market = normalize(["ticker", "coin_name", "usd_price"], ["btc", " Bitcoin ", "$87,000"])

    assert market.source_key == "btc|bitcoin"
    assert market.coingecko_id is None
    assert (market.symbol, market.name, market.price_usd) == ("BTC", "Bitcoin", Decimal(87000))


def test_coin_id_is_lower_cased_and_is_the_key():
    market = normalize(["coin_id", "symbol", "price"], [" Bitcoin ", "btc", "1"])

    assert (market.source_key, market.coingecko_id) == ("bitcoin", "bitcoin")


def test_rows_without_a_timestamp_column_use_the_file_mtime(drop):
    write(drop, "a.csv", "symbol,name,price\nBTC,Bitcoin,1\n", mtime=MTIME)

    [market] = normalized(fetch(drop))

    assert market.observed_at == MTIME


def test_every_field_is_read():
    header = ["id", "symbol", "name", "price", "cap", "volume", "change_24h", "rank", "timestamp"]
    values = ["ethereum", "eth", "Ethereum", "4800 USD", "600B", "1.2bn", "-2.5", "2", "1766901373"]

    market = normalize(header, values)

    assert market.price_usd == Decimal(4800)
    assert market.market_cap == Decimal("6e11")
    assert market.volume_24h == Decimal("1.2e9")
    assert market.price_change_24h == Decimal("-2.5")
    assert market.market_cap_rank == 2
    assert market.observed_at == dt.datetime(2025, 12, 28, 5, 56, 13, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("values", "code"),
    [
        (["btc", "Bitcoin", "", "2025-12-28"], "missing_field"),  # blank price
        (["btc", "Bitcoin", "N/A", "2025-12-28"], "missing_field"),
        (["btc", "Bitcoin", "1", ""], "missing_field"),  # blank timestamp
        (["btc", "Bitcoin", "abc", "2025-12-28"], "invalid_value"),
        (["btc", "Bitcoin", "1", "soon"], "invalid_value"),
        (["", "Bitcoin", "1", "2025-12-28"], "missing_key"),
        (["btc", "Bitcoin", "1"], "malformed_row"),
        (["btc", "Bitcoin", "1", "2025-12-28", "extra"], "malformed_row"),
    ],
)
def test_bad_rows_raise_item_errors_with_a_code(values, code):
    with pytest.raises(ItemError) as caught:
        normalize(["symbol", "name", "price", "timestamp"], values)
    assert caught.value.code == code


def test_extra_blank_fields_at_the_end_of_a_row_are_fine():
    market = normalize(["symbol", "name", "price"], ["btc", "Bitcoin", "1", "", " "])

    assert market.price_usd == 1


def test_zero_price_is_kept_not_treated_as_blank():
    assert normalize(["symbol", "name", "price"], ["btc", "Bitcoin", "0"]).price_usd == 0


@pytest.mark.parametrize("bad", [None, "row", {"values": ["1"]}, {"header": ["price"]}])
def test_an_item_that_is_not_a_row_is_malformed(bad):
    with pytest.raises(ItemError) as caught:
        CsvSource(drop_dir="/nonexistent").normalize(bad)
    assert caught.value.code == "malformed"


# --- the fast path agrees with normalize() ----------------------------------------------------

FAST_HEADER = ["coin_id", "symbol", "name", "price", "market_cap", "volume", "change", "timestamp"]
FAST_ROW = [
    "bitcoin",
    "btc",
    "Bitcoin",
    "87645",
    "1.7e12",
    "4.2e10",
    "-1.5",
    "2025-12-28T05:56:13Z",
]


def both_ways(header: list[str], values: list[str]):
    """(fast path result, normalize result), an ItemError reduced to its code."""
    source = CsvSource(drop_dir="/nonexistent")
    [(_, fast)] = source.normalize_many([item(header, values)])
    try:
        slow = source.normalize(item(header, values))
    except ItemError as exc:
        slow = exc
    return tuple(r.code if isinstance(r, ItemError) else r for r in (fast, slow))


def with_cell(column: str, value: str) -> list[str]:
    values = list(FAST_ROW)
    values[FAST_HEADER.index(column)] = value
    return values


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("price", "87645.5"),
        ("price", "$87,000"),
        ("price", ""),
        ("price", "0"),
        ("price", " 42 "),
        ("market_cap", "N/A"),
        ("market_cap", ""),
        ("volume", "1e30"),
        ("timestamp", "2025-12-28T07:56:13+02:00"),
        ("timestamp", "2025-12-28"),
        ("timestamp", "1766901373"),
        ("timestamp", ""),
        ("coin_id", ""),
        ("coin_id", " Bitcoin "),
        ("name", "  Bitcoin  "),
        ("name", "Bit  coin"),
        ("symbol", "x" * 60),
        # Cells a shortcut in the fast path could read differently from normalize(): a compact ISO
        # date, tabs and no-break spaces in names and symbols, underscores between digits, and
        # a local time whose UTC equivalent falls past year 9999.
        pytest.param("timestamp", "20251228", id="basic-iso-date"),
        pytest.param("name", "Bit\tcoin", id="tab-in-name"),
        pytest.param("name", "Bitcoin\u00a0Cash", id="nbsp-in-name"),
        pytest.param("symbol", "B\tTC", id="tab-in-symbol"),
        pytest.param("price", "1_000", id="underscore-digits"),
        pytest.param("timestamp", "9999-12-31T23:59:59-05:00", id="utc-past-year-9999"),
    ],
)
def test_fast_path_agrees_with_normalize(column, value):
    fast, slow = both_ways(FAST_HEADER, with_cell(column, value))

    assert fast == slow


def cells(*samples: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(samples), st.text(max_size=10))


NUMBER = cells("1", "1.5", "0", "-1", "1e3", " 7 ", "", "N/A", "NaN", "$1,000", "1_0")
ROW = st.tuples(
    cells("bitcoin", " Bitcoin ", ""),
    cells("btc", " BTC ", "B\tTC", ""),
    cells("Bitcoin", " Bitcoin ", "Bit\tcoin", "Bitcoin\u00a0Cash", "Bit  coin"),
    NUMBER,
    NUMBER,
    NUMBER,
    NUMBER,
    cells("2025-12-28", "2025-12-28T05:56:13Z", "2025-12-28T05:56:13+02:00", "20251228", "0"),
)


# The same agreement on any row mixing those awkward cells with arbitrary text.
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(ROW)
def test_fast_path_agrees_with_normalize_on_any_row(values):
    try:
        fast, slow = both_ways(FAST_HEADER, list(values))
    except (ArithmeticError, ValueError):  # an escaping parser error is test_parsing's to catch
        reject()
    assert fast == slow
