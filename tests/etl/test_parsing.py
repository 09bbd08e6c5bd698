"""The value parsers: human-formatted numbers and timestamps in every shape upstreams send."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from etl.parsing import MAX_ABS_VALUE, parse_decimal, parse_int, parse_timestamp

UTC = dt.UTC


# --- parse_decimal ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (87645, "87645"),
        (-3, "-3"),
        (0.5, "0.5"),
        (2936.87, "2936.87"),
        (Decimal("0.000001234"), "0.000001234"),
        ("87645", "87645"),
        ("87645.5", "87645.5"),
        ("-2.5", "-2.5"),
        ("  42  ", "42"),
        ("1e5", "100000"),
        ("1.5E-3", "0.0015"),
        (".5", "0.5"),
        ("$87,000", "87000"),
        ("$ 87,000.25", "87000.25"),
        ("US$5", "5"),
        ("-$5", "-5"),
        ("$-5", "-5"),
        ("4800 USD", "4800"),
        ("4800usd", "4800"),
        ("$1.7T", "1700000000000"),
        ("1.7t", "1700000000000"),
        ("600B", "600000000000"),
        ("2.5bn", "2500000000"),
        ("12M", "12000000"),
        ("3.2k", "3200"),
        ("$1.5B USD", "1500000000"),
        ("1,234.5", "1234.5"),
        ("12,345,678", "12345678"),
        ("1,234", "1234"),  # a single group of three digits is a thousands separator
        ("1.234,5", "1234.5"),
        ("1.234.567", "1234567"),
        ("1.234.567,89", "1234567.89"),
        ("87,5", "87.5"),
        ("0,05", "0.05"),
        ("1 234 567", "1234567"),
        ("1'234'567.5", "1234567.5"),
    ],
)
def test_parse_decimal_reads_plain_and_human_numbers(value, expected):
    assert parse_decimal(value) == Decimal(expected)


@pytest.mark.parametrize(
    "value", [None, "", "   ", "N/A", "n/a", "NA", "-", "—", "null", "None", "?"]
)
def test_parse_decimal_blank_is_none(value):
    assert parse_decimal(value) is None


def test_parse_decimal_nan_text_is_a_blank():
    # Spreadsheet and pandas exports write NaN for a missing cell.
    assert parse_decimal("NaN") is None


@pytest.mark.parametrize("value", [0, 0.0, "0", "0.0", "0.000", "$0", "0 USD", "-0", Decimal(0)])
def test_parse_decimal_zero_is_a_value_never_a_blank(value):
    result = parse_decimal(value)
    assert result is not None
    assert result == 0
    assert isinstance(result, Decimal)


@pytest.mark.parametrize(
    "value",
    [True, False, [1], {"price": 1}, (1,), {1}, b"1", object()],
    ids=["true", "false", "list", "dict", "tuple", "set", "bytes", "object"],
)
def test_parse_decimal_rejects_non_numbers(value):
    with pytest.raises(ValueError, match="expected a number"):
        parse_decimal(value)


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        "inf",
        "-inf",
        "Infinity",
    ],
    ids=repr,
)
def test_parse_decimal_rejects_nan_and_infinity(value):
    with pytest.raises(ValueError):
        parse_decimal(value)


@pytest.mark.parametrize(
    "value",
    [
        10**22,
        -(10**22),
        1e22,
        "1e22",
        "10000000000000000000000",
        "$10,000,000,000,000,000,000,000",
        "10000000000T",
        Decimal("1e30"),
        "9" * 40,
    ],
    ids=repr,
)
def test_parse_decimal_rejects_numbers_that_do_not_fit_the_column(value):
    with pytest.raises(ValueError, match="out of range"):
        parse_decimal(value)


def test_parse_decimal_accepts_the_largest_numbers_that_fit():
    assert parse_decimal("9999999999999999999999") == MAX_ABS_VALUE - 1
    assert parse_decimal(-(10**22) + 1) == -(MAX_ABS_VALUE - 1)


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "$",
        "USD",
        "12abc",
        "1.2.3x",
        "0x10",
        "1_000",
        "²",
        "5 EUR",
        "1e5k",
        "--",
        "1,2,3,x",
    ],
)
def test_parse_decimal_rejects_garbage(value):
    with pytest.raises(ValueError, match="not a number"):
        parse_decimal(value)


# A huge exponent is refused with a ValueError like any other bad number, not a
# decimal.Overflow or decimal.InvalidOperation that callers catching ValueError would miss.
@pytest.mark.parametrize(
    "value",
    ["1e1000000", "-1E+1000000", "1e999999999", "1e99999999999999999999"],
)
def test_parse_decimal_huge_exponent_is_a_value_error_not_an_arithmetic_error(value):
    with pytest.raises(ValueError):
        parse_decimal(value)


# A long run of spaces between a digit and junk is refused quickly: adjacent whitespace-eating
# patterns would otherwise backtrack in cubic time (1 000 spaces: ~15 s of CPU).
def test_parse_decimal_is_fast_on_long_runs_of_spaces():
    started = time.perf_counter()
    for text in ("1" + " " * 400 + "x", "1" + " " * 400 + "kx", "-" + " " * 400 + "x"):
        with pytest.raises(ValueError):
            parse_decimal(text)
    assert time.perf_counter() - started < 0.25


# --- parse_int --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1), ("1", 1), ("42", 42), ("1,234", 1234), ("12.0", 12), (3.0, 3), ("1.5k", 1500)],
)
def test_parse_int_reads_whole_numbers(value, expected):
    result = parse_int(value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize("value", [0, "0"])
def test_parse_int_zero_is_zero(value):
    assert parse_int(value) == 0


@pytest.mark.parametrize("value", [None, "", "N/A", "-"])
def test_parse_int_blank_is_none(value):
    assert parse_int(value) is None


@pytest.mark.parametrize("value", ["1.5", 2.5, "-1", -1, "2147483648", True, "x", [1]], ids=repr)
def test_parse_int_rejects_fractions_negatives_and_overflow(value):
    with pytest.raises(ValueError):
        parse_int(value)


def test_parse_int_accepts_the_largest_integer_column_value():
    assert parse_int("2147483647") == 2_147_483_647


# --- parse_timestamp --------------------------------------------------------------------------


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-12-28T05:56:13.703Z", utc(2025, 12, 28, 5, 56, 13, 703000)),
        ("2025-12-28T05:56:13Z", utc(2025, 12, 28, 5, 56, 13)),
        ("2025-12-28T07:56:13+02:00", utc(2025, 12, 28, 5, 56, 13)),
        ("2025-12-28T00:56:13-05:00", utc(2025, 12, 28, 5, 56, 13)),
        ("2025-12-28T05:56:13.703+0000", utc(2025, 12, 28, 5, 56, 13, 703000)),
        ("2025-12-28T05:56:13", utc(2025, 12, 28, 5, 56, 13)),
        ("2025-12-28 05:56:13", utc(2025, 12, 28, 5, 56, 13)),
        ("2025-12-28", utc(2025, 12, 28)),
        ("  2025-12-28  ", utc(2025, 12, 28)),
        ("2025/12/28 05:56:13", utc(2025, 12, 28, 5, 56, 13)),
        ("28.12.2025", utc(2025, 12, 28)),
        ("Fri, 12 Dec 2025 22:20:18 +0000", utc(2025, 12, 12, 22, 20, 18)),
        ("Fri, 12 Dec 2025 22:20:18 GMT", utc(2025, 12, 12, 22, 20, 18)),
        ("Fri, 12 Dec 2025 17:20:18 -0500", utc(2025, 12, 12, 22, 20, 18)),
        ("Sat, 13 Dec 2025 00:20:18 +0200", utc(2025, 12, 12, 22, 20, 18)),
        ("Fri, 12 Dec 2025 22:20:18", utc(2025, 12, 12, 22, 20, 18)),
    ],
)
def test_parse_timestamp_reads_text(value, expected):
    result = parse_timestamp(value)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1766901373, utc(2025, 12, 28, 5, 56, 13)),
        (1766901373.5, utc(2025, 12, 28, 5, 56, 13, 500000)),
        ("1766901373", utc(2025, 12, 28, 5, 56, 13)),
        ("1766901373.5", utc(2025, 12, 28, 5, 56, 13, 500000)),
        (1766901373703, utc(2025, 12, 28, 5, 56, 13, 703000)),
        (1766901373703.0, utc(2025, 12, 28, 5, 56, 13, 703000)),
        ("1766901373703", utc(2025, 12, 28, 5, 56, 13, 703000)),
        (0, utc(1970, 1, 1)),
        ("0", utc(1970, 1, 1)),
    ],
    ids=repr,
)
def test_parse_timestamp_reads_epoch_seconds_and_milliseconds(value, expected):
    result = parse_timestamp(value)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize("value", [None, "", "  ", "N/A", "-", "null"])
def test_parse_timestamp_blank_is_none(value):
    assert parse_timestamp(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "2025-13-45",
        "Mon, 99 Foo 2025",
        "24:00",
        "yesterday",
        -1,
        "-1",
        float("nan"),
        float("inf"),
        1e20,
        True,
        [2025, 12, 28],
        {"ts": 1},
        dt.date(2025, 12, 28),
    ],
    ids=repr,
)
def test_parse_timestamp_rejects_garbage(value):
    with pytest.raises(ValueError):
        parse_timestamp(value)


# Values at the edges of datetime's range (a huge epoch, an offset that takes UTC past year
# 9999 or before year 1) are refused with a ValueError, not an escaping OverflowError.
@pytest.mark.parametrize(
    "value",
    [
        10**400,  # math.isfinite() of a huge int
        "9999-12-31T23:59:59-05:00",  # astimezone() past year 9999
        "0001-01-01T00:00:00+05:00",  # astimezone() before year 1
        "Fri, 31 Dec 9999 23:59:59 -0500",
    ],
    ids=["10**400", "iso-9999-05:00", "iso-0001+05:00", "rfc822-9999-0500"],
)
def test_parse_timestamp_out_of_range_is_a_value_error_not_an_overflow(value):
    with pytest.raises(ValueError):
        parse_timestamp(value)


# --- properties -------------------------------------------------------------------------------

IN_RANGE = st.decimals(
    min_value=-MAX_ABS_VALUE, max_value=MAX_ABS_VALUE, allow_nan=False, allow_infinity=False
).filter(lambda d: abs(d) < MAX_ABS_VALUE)

JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=10,
)


# The first example has 29 significant digits: the range check compares it at full precision,
# where rounding it to the default context's 28 digits (1E+22) would wrongly reject it.
@given(IN_RANGE)
@example(Decimal("9999999999999999999999.9999999"))
@example(Decimal("-0"))
@example(Decimal("1E-30"))
def test_parse_decimal_round_trips_str_of_any_decimal_in_range(number):
    assert parse_decimal(str(number)) == number


@given(st.integers(min_value=-(10**22) + 1, max_value=10**22 - 1))
def test_parse_decimal_round_trips_any_int_in_range(number):
    assert parse_decimal(number) == number
    assert parse_decimal(str(number)) == number


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e21, max_value=1e21))
def test_parse_decimal_of_a_float_is_its_shortest_repr(number):
    assert parse_decimal(number) == Decimal(repr(number))


@given(
    st.decimals(
        min_value=Decimal("-999999999999999.99"),
        max_value=Decimal("999999999999999.99"),
        places=2,
        allow_nan=False,
        allow_infinity=False,
    ),
    st.sampled_from(["${:,.2f}", "$ {:,.2f}", "{:,.2f} USD", "US${:,.2f}", "{:,.2f}"]),
)
def test_parse_decimal_round_trips_money_with_thousands_separators(number, template):
    text = template.format(abs(number))
    if number < 0:
        text = "-" + text
    assert parse_decimal(text) == number


@given(
    st.decimals(
        min_value=Decimal("-999999999999.99"),
        max_value=Decimal("999999999999.99"),
        places=2,
        allow_nan=False,
        allow_infinity=False,
    )
)
def test_parse_decimal_round_trips_european_separators(number):
    text = f"{number:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")
    assert parse_decimal(text) == number


@given(st.text())
@example("1e1000000")  # no decimal.Overflow escapes
@example("1e99999999999999999999")  # no decimal.InvalidOperation escapes
def test_parse_decimal_raises_only_value_error_on_any_text(text):
    try:
        result = parse_decimal(text)
    except ValueError:
        return
    assert result is None or (result.is_finite() and abs(result) < MAX_ABS_VALUE)


@given(JSON_LIKE)
def test_parse_decimal_raises_only_value_error_on_any_json_value(value):
    try:
        result = parse_decimal(value)
    except ValueError:
        return
    assert result is None or isinstance(result, Decimal)


def _assert_aware_utc_or_none(result) -> None:
    if result is not None:
        assert isinstance(result, dt.datetime)
        assert result.tzinfo is not None
        assert result.utcoffset() == dt.timedelta(0)


@given(st.one_of(st.text(), st.integers(), st.floats(), JSON_LIKE))
@example(10**400)  # no OverflowError escapes from a huge epoch
@example("9999-12-31T23:59:59-05:00")  # nor from a UTC time past year 9999
def test_parse_timestamp_raises_only_value_error_and_returns_aware_utc(value):
    try:
        result = parse_timestamp(value)
    except ValueError:
        return
    _assert_aware_utc_or_none(result)


OFFSETS = st.builds(
    dt.timezone,
    st.timedeltas(
        min_value=-dt.timedelta(hours=23, minutes=59), max_value=dt.timedelta(hours=23)
    ).map(lambda d: dt.timedelta(minutes=int(d.total_seconds() // 60))),
)


@given(st.datetimes(timezones=OFFSETS))
@example(dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone(-dt.timedelta(hours=5))))
def test_parse_timestamp_round_trips_iso_text_with_any_offset(moment):
    try:
        expected = (moment.replace(tzinfo=None) - moment.utcoffset()).replace(tzinfo=UTC)
    except OverflowError:
        # No UTC equivalent within datetime's range: a clean ValueError, not an OverflowError.
        with pytest.raises(ValueError):
            parse_timestamp(moment.isoformat())
        return
    result = parse_timestamp(moment.isoformat())
    assert result == expected
    assert result.tzinfo is UTC


@given(st.integers(min_value=0, max_value=99_999_999_999))
def test_parse_timestamp_round_trips_epoch_seconds(seconds):
    assert parse_timestamp(seconds) == dt.datetime.fromtimestamp(seconds, tz=UTC)


@given(st.integers(min_value=1_000_000_000, max_value=99_999_999_999))
def test_parse_timestamp_round_trips_epoch_seconds_as_text(seconds):
    # From 2001 on: shorter digit strings may one day be read as dates (20251228).
    assert parse_timestamp(str(seconds)) == dt.datetime.fromtimestamp(seconds, tz=UTC)


@given(st.integers(min_value=100_000_000_001, max_value=99_999_999_999_999))
def test_parse_timestamp_reads_large_epochs_as_milliseconds(millis):
    result = parse_timestamp(millis)
    assert abs(result - dt.datetime.fromtimestamp(millis / 1000, tz=UTC)) < dt.timedelta(
        milliseconds=1
    )
