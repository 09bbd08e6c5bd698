"""Parsers for the values upstreams send: numbers in human formats, timestamps in many shapes.

Every parser returns a clean Python value or None for a genuine blank, and raises ValueError
with a message fit for a quarantine reason otherwise. Zero is a value, never a blank.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal, InvalidOperation

# Quote columns are numeric(40, 18): 22 digits before the point.
MAX_ABS_VALUE = Decimal(10) ** 22

_BLANKS = frozenset({"", "-", "—", "n/a", "na", "null", "none", "nan", "?"})
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_SUFFIXES = {
    "k": Decimal(10) ** 3,
    "m": Decimal(10) ** 6,
    "b": Decimal(10) ** 9,
    "bn": Decimal(10) ** 9,
    "t": Decimal(10) ** 12,
}
_HUMAN_NUMBER = re.compile(
    r"""^(?P<sign>[-+]?)(?:US)?\$?(?P<sign2>[-+]?)
        (?P<num>\d[\d,.']*|\.\d+)
        (?P<suffix>k|m|b|bn|t)?
        (?:usd|us\$|\$)?$""",
    re.IGNORECASE | re.VERBOSE,
)


def _check_range(value: Decimal, raw: object) -> Decimal:
    if not value.is_finite():
        raise ValueError(f"not a finite number: {raw!r}")
    if value.copy_abs() >= MAX_ABS_VALUE:
        raise ValueError(f"number out of range: {raw!r}")
    return value


def _normalize_separators(num: str) -> str:
    """'87,000' -> '87000', '1.234,5' -> '1234.5', '87,5' -> '87.5'."""
    num = num.replace(" ", "").replace("'", "")
    has_dot, has_comma = "." in num, "," in num
    if has_dot and has_comma:
        if num.rfind(",") > num.rfind("."):
            return num.replace(".", "").replace(",", ".")
        return num.replace(",", "")
    if has_comma:
        groups = num.split(",")
        if len(groups) > 2 or all(len(g) == 3 for g in groups[1:]):
            return num.replace(",", "")
        return num.replace(",", ".")
    if num.count(".") > 1:
        return num.replace(".", "")
    return num


def parse_decimal(value: object) -> Decimal | None:
    """A number from JSON or text: 87645, '87645.5', '$87,000', '4800 USD', '1.7T', '600B'."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got a boolean: {value!r}")
    if isinstance(value, int):
        return _check_range(Decimal(value), value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        return _check_range(Decimal(repr(value)), value)
    if isinstance(value, Decimal):
        return _check_range(value, value)
    if not isinstance(value, str):
        raise ValueError(f"expected a number, got {type(value).__name__}: {value!r}")
    text = value.strip()
    if _PLAIN_NUMBER.fullmatch(text):
        try:
            return _check_range(Decimal(text), value)
        except InvalidOperation:
            raise ValueError(f"number out of range: {value!r}") from None
    if text.lower() in _BLANKS:
        return None
    match = _HUMAN_NUMBER.match("".join(text.split()))
    if not match:
        raise ValueError(f"not a number: {value!r}")
    negative = "-" in (match["sign"] + match["sign2"])
    try:
        number = Decimal(_normalize_separators(match["num"]))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    suffix = (match["suffix"] or "").lower()
    if suffix:
        number *= _SUFFIXES[suffix]
    return _check_range(-number if negative else number, value)


def parse_int(value: object) -> int | None:
    number = parse_decimal(value)
    if number is None:
        return None
    if number != number.to_integral_value() or number < 0 or number > 2_147_483_647:
        raise ValueError(f"expected a whole non-negative number: {value!r}")
    return int(number)


def parse_timestamp(value: object) -> dt.datetime | None:
    """An aware UTC datetime from ISO 8601 text, a date, or epoch seconds/milliseconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a timestamp, got a boolean: {value!r}")
    if isinstance(value, int | float):
        return _from_epoch(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a timestamp, got {type(value).__name__}: {value!r}")
    text = value.strip()
    if text.lower() in _BLANKS:
        return None
    if _PLAIN_NUMBER.fullmatch(text):
        return _from_epoch(float(text))
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        parsed = _parse_loose(text, value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(f"timestamp out of range: {value!r}") from None


def _parse_loose(text: str, raw: object) -> dt.datetime:
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        pass
    for fmt in ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d", "%d.%m.%Y %H:%M", "%d.%m.%Y", "%Y-%m-%d %H:%M"):
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(f"not a timestamp: {raw!r}")


def _from_epoch(number: float) -> dt.datetime:
    if isinstance(number, int) and number > 10**15:
        raise ValueError(f"epoch timestamp out of range: {number!r}")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"not a valid epoch timestamp: {number!r}")
    if number > 1e11:  # milliseconds
        number /= 1000
    try:
        return dt.datetime.fromtimestamp(number, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"epoch timestamp out of range: {number!r}") from None


def clean_text(value: object, *, max_length: int | None = None) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}: {value!r}")
    text = " ".join(value.split())
    if max_length is not None and len(text) > max_length:
        text = text[: max_length - 1] + "…"
    return text
