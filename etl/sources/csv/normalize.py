"""CSV rows -> MarketItem.

`CsvNormalizer.normalize` decides precisely and explains its errors; the careful parsers of
`etl.parsing` read the human value formats (`$87,000`, `4800 USD`, `1.7T`). `normalize_many`
takes the common case (plain numbers, ISO times) on a fast path (`_FastPlan`) first and hands
anything unusual to `normalize`. Drift detection's view of a row (`observe`) and accepted
header renames (`apply_mappings`) live here too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from etl.exceptions import ItemError
from etl.parsing import (
    MAX_ABS_VALUE,
    clean_text,
    parse_decimal,
    parse_int,
    parse_timestamp,
)
from etl.sources.base import MarketItem
from etl.sources.csv.schema import column_map, normalize_header

_MISSING = object()
_UTC = dt.UTC


def _fast_number(text: str) -> Decimal | None:
    """A plain number, or None for a blank; raises for anything needing the careful parser."""
    if not text:
        return None
    if "_" in text:
        raise ValueError(text)
    number = Decimal(text)
    if not number.is_finite() or not -MAX_ABS_VALUE < number < MAX_ABS_VALUE:
        raise ValueError(text)
    return number


class _FastPlan:
    """Column positions of one header, for rows in the usual shape."""

    __slots__ = (
        "change",
        "coin_id",
        "count",
        "market_cap",
        "name",
        "price",
        "symbol",
        "time",
        "volume",
    )

    @classmethod
    def build(cls, header: object) -> _FastPlan | None:
        if not isinstance(header, list):
            return None
        columns = column_map(tuple(header))
        if "market_cap_rank" in columns or "price_usd" not in columns:
            return None
        plan = cls()
        plan.count = len(header)
        for field in (
            "coin_id",
            "symbol",
            "name",
            "price",
            "market_cap",
            "volume",
            "change",
            "time",
        ):
            canonical = _FAST_FIELDS[field]
            setattr(plan, field, columns.get(canonical))
        return plan

    def normalize(self, item: dict) -> MarketItem | None:
        values = item.get("values")
        if not isinstance(values, list) or len(values) != self.count:
            return None
        try:
            price = _fast_number(values[self.price])
            if price is None:
                return None
            cap = _fast_number(values[self.market_cap]) if self.market_cap is not None else None
            volume = _fast_number(values[self.volume]) if self.volume is not None else None
            change = _fast_number(values[self.change]) if self.change is not None else None
            if self.time is None:
                return None
            stamp = values[self.time]
            if len(stamp) < 10 or stamp[4] != "-":
                return None
            observed_at = dt.datetime.fromisoformat(stamp)
            if observed_at.tzinfo is None:
                observed_at = observed_at.replace(tzinfo=_UTC)
            elif observed_at.tzinfo is not _UTC:
                observed_at = observed_at.astimezone(_UTC)
        except (ValueError, ArithmeticError):
            return None
        coin_id = values[self.coin_id].strip().lower() if self.coin_id is not None else ""
        symbol = values[self.symbol].strip().upper() if self.symbol is not None else ""
        name = values[self.name].strip() if self.name is not None else ""
        if not coin_id or len(symbol) > 50 or len(name) > 200:
            return None
        # Inner runs of spaces, tabs or other odd characters: normalize() cleans those.
        if "  " in name or not (coin_id + symbol + name).isprintable():
            return None
        return MarketItem(
            source_key=coin_id,
            coingecko_id=coin_id,
            symbol=symbol,
            name=name,
            observed_at=observed_at,
            price_usd=price,
            market_cap=cap,
            volume_24h=volume,
            price_change_24h=change,
        )


_FAST_FIELDS = {
    "coin_id": "coin_id",
    "symbol": "symbol",
    "name": "name",
    "price": "price_usd",
    "market_cap": "market_cap",
    "volume": "volume_24h",
    "change": "price_change_24h",
    "time": "observed_at",
}


class CsvNormalizer:
    """The row side of `CsvSource`, which sets `_mapped_headers` (an empty dict)."""

    _mapped_headers: dict[tuple, list[str]]

    def normalize_many(self, items: list[Any]) -> Iterator[tuple[Any, MarketItem | ItemError]]:
        """The common case (plain numbers, ISO times) on a fast path; anything unusual takes
        `normalize`, which decides precisely and explains its errors."""
        plans: dict[int, _FastPlan | None] = {}
        for item in items:
            header = item.get("header") if isinstance(item, dict) else None
            plan = plans.get(id(header), _MISSING)
            if plan is _MISSING:
                plan = plans[id(header)] = _FastPlan.build(header)
            result = plan.normalize(item) if plan is not None else None
            if result is None:
                try:
                    result = self.normalize(item)
                except ItemError as exc:
                    result = exc
            yield item, result

    def normalize(self, item: Any) -> MarketItem:
        try:
            header, values = item["header"], item["values"]
            columns = column_map(tuple(header))
        except (KeyError, TypeError):
            raise ItemError("malformed", "not a CSV row item") from None
        if len(values) < len(header) or any(v.strip() for v in values[len(header) :]):
            raise ItemError(
                "malformed_row",
                f"row {item.get('row')} has {len(values)} fields, the header has {len(header)}",
            )

        def get(field: str) -> str | None:
            index = columns.get(field)
            return None if index is None else values[index]

        try:
            coin_id = clean_text(get("coin_id")).lower()
            symbol = clean_text(get("symbol"), max_length=50).upper()
            name = clean_text(get("name"), max_length=200)
            price = parse_decimal(get("price_usd"))
            market_cap = parse_decimal(get("market_cap"))
            volume = parse_decimal(get("volume_24h"))
            change = parse_decimal(get("price_change_24h"))
            rank = parse_int(get("market_cap_rank"))
            if "observed_at" in columns:
                observed_at = parse_timestamp(get("observed_at"))
                if observed_at is None:
                    raise ItemError("missing_field", "blank timestamp")
            else:
                # A drop without timestamps is a snapshot taken when the file was written.
                observed_at = parse_timestamp(item["mtime"])
        except ValueError as exc:
            if isinstance(exc, ItemError):
                raise
            raise ItemError("invalid_value", str(exc)) from None
        if price is None:
            raise ItemError("missing_field", "blank price")
        if not coin_id and not symbol:
            raise ItemError("missing_key", "row has neither a coin id nor a symbol")
        return MarketItem(
            source_key=coin_id or f"{symbol.lower()}|{name.lower()}",
            coingecko_id=coin_id or None,
            symbol=symbol,
            name=name,
            observed_at=observed_at,
            price_usd=price,
            market_cap=market_cap,
            volume_24h=volume,
            price_change_24h=change,
            market_cap_rank=rank,
        )

    @classmethod
    def observe(self, item: Any) -> dict | None:
        try:
            header, values = item["header"], item["values"]
        except (KeyError, TypeError):
            return None
        return {normalize_header(h): v for h, v in zip(header, values, strict=False)}

    def apply_mappings(self, item: Any, mappings: dict[str, str]) -> Any:
        """Rename header columns: the rows of a file share one header, so does the result."""
        if not isinstance(item, dict) or not isinstance(item.get("header"), list):
            return item
        header = item["header"]
        mapped = self._mapped_headers.get((id(header), tuple(mappings.items())))
        if mapped is None:
            mapped = [mappings.get(normalize_header(h), h) for h in header]
            self._mapped_headers[(id(header), tuple(mappings.items()))] = mapped
        return {**item, "header": mapped}
