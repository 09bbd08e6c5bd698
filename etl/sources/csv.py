"""CSV drops: every `*.csv` in `CSV_DROP_DIR`, read incrementally and resumably.

Per file the cursor keeps the absolute byte offset and row number after the last committed
page, plus the SHA-256 of the file's bytes up to that offset. On the next run, a file whose
prefix still hashes the same is read from that offset: an appended file yields only its new
rows, a half-read file resumes at its row. A file whose prefix changed is read from the start.

Column names and value formats vary (`price`/`price_usd`/`usd_price`, `$87,000`, `1.7T`,
`;` delimiters, a UTF-8 BOM); they are mapped through the aliases of the schema below.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings

from etl.exceptions import ItemError, SourceConfigError
from etl.parsing import (
    MAX_ABS_VALUE,
    clean_text,
    parse_decimal,
    parse_int,
    parse_timestamp,
)
from etl.sources.base import Field, MarketItem, Page, Source

BOM = b"\xef\xbb\xbf"

SCHEMA = (
    Field("coin_id", "string", aliases=("id", "coingecko_id", "cg_id", "asset_id", "slug")),
    Field("symbol", "string", aliases=("ticker", "sym", "code")),
    Field("name", "string", aliases=("coin_name", "coin", "asset", "asset_name")),
    Field(
        "price_usd",
        "number",
        required=True,
        aliases=("price", "usd_price", "current_price", "price_in_usd", "usd", "last_price"),
    ),
    Field(
        "market_cap",
        "number",
        aliases=("cap", "marketcap", "mkt_cap", "market_cap_usd", "mcap", "market_capitalization"),
    ),
    Field(
        "volume_24h",
        "number",
        aliases=("volume", "total_volume", "vol_24h", "24h_volume", "volume_usd", "volume_24h_usd"),
    ),
    Field(
        "price_change_24h",
        "number",
        aliases=(
            "change_24h",
            "pct_change_24h",
            "price_change_percentage_24h",
            "24h_change",
            "change_24h_pct",
            "percent_change_24h",
        ),
    ),
    Field("market_cap_rank", "integer", aliases=("rank", "cmc_rank")),
    Field(
        "observed_at",
        "timestamp",
        aliases=("timestamp", "last_updated", "time", "date", "datetime", "updated_at", "as_of"),
    ),
)

_ALIASES = {alias: f.name for f in SCHEMA for alias in (f.name, *f.aliases)}
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalize_header(name: str) -> str:
    """'Price (USD)' -> 'price_usd', '\\ufeffcoin_id' -> 'coin_id'."""
    return _NON_ALNUM.sub("_", name.replace("\ufeff", "").strip().lower()).strip("_")


@lru_cache(maxsize=256)
def column_map(header: tuple[str, ...]) -> dict[str, int]:
    """Canonical field name -> column index, for the first column that maps to each field."""
    mapping: dict[str, int] = {}
    for index, column in enumerate(header):
        canonical = _ALIASES.get(normalize_header(column))
        if canonical and canonical not in mapping:
            mapping[canonical] = index
    return mapping


def _decode(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        # Spreadsheet exports are often Windows-1252; never lose a row over its encoding.
        return line.decode("cp1252", errors="replace")


def _sniff_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _prefix_hasher(fh: BinaryIO, length: int):
    hasher = hashlib.sha256()
    remaining = length
    while remaining > 0:
        chunk = fh.read(min(1 << 20, remaining))
        if not chunk:
            break
        hasher.update(chunk)
        remaining -= len(chunk)
    return hasher, length - remaining


class _FileContext:
    """What every row of one file shares; items reference it instead of copying it."""

    __slots__ = ("delimiter", "header", "mtime", "name")

    def __init__(self, name: str, header: list[str], delimiter: str, mtime: str) -> None:
        self.name, self.header, self.delimiter, self.mtime = name, header, delimiter, mtime

    def item(self, row: int, values: list[str]) -> dict:
        return {
            "file": self.name,
            "row": row,
            "header": self.header,
            "values": values,
            "mtime": self.mtime,
        }


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


class CsvSource(Source):
    name = "csv"
    kind = "market"
    schema = SCHEMA
    key_fields = ("coin_id", "symbol")
    text_values = True
    sparse = True
    uniform_pages = True
    cursor_field = None  # resumes by byte offset; rows without a time take the file's

    def __init__(self, *, drop_dir: Path | str | None = None, page_rows: int | None = None):
        self.drop_dir = Path(drop_dir or settings.CSV_DROP_DIR)
        self.page_rows = max(1, page_rows or settings.CSV_PAGE_ROWS)
        self._mapped_headers: dict[tuple, list[str]] = {}

    def fetch(self, cursor: dict) -> Iterator[Page]:
        if not self.drop_dir.is_dir():
            raise SourceConfigError(
                f"CSV_DROP_DIR does not exist or is not a folder: {self.drop_dir}"
            )
        files: dict = dict(cursor.get("files") or {})
        for path in sorted(self.drop_dir.glob("*.csv")):
            for page in self._read(path, files):
                if not page.error:
                    files = page.cursor["files"]
                yield page

    def _read(self, path: Path, files: dict) -> Iterator[Page]:
        name = path.name
        stat = path.stat()
        mtime = dt.datetime.fromtimestamp(int(stat.st_mtime), tz=dt.UTC).isoformat()
        state = files.get(name)
        with path.open("rb") as fh:
            hasher = None
            if state and stat.st_size >= state["offset"]:
                hasher, read = _prefix_hasher(fh, state["offset"])
                if read != state["offset"] or hasher.hexdigest() != state["sha256"]:
                    hasher = None  # rewritten, not appended: start again
            if hasher is not None:
                if stat.st_size == state["offset"]:
                    return  # nothing new since the last committed row
                offset, row = state["offset"], state["row"]
                header, delimiter = state["header"], state["delimiter"]
            else:
                fh.seek(0)
                hasher = hashlib.sha256()
                offset, row = 0, 0
                header_bytes = b"\n"
                while header_bytes and not header_bytes.strip():  # skip leading blank lines
                    header_bytes = fh.readline()
                    hasher.update(header_bytes)
                    offset += len(header_bytes)
                text = _decode(header_bytes.removeprefix(BOM)).strip("\r\n")
                if not text.strip():
                    yield self._error_page(name, files, f"{name}: empty file (no header row)")
                    return
                delimiter = _sniff_delimiter(text)
                # An unknown header is not refused here: drift detection explains it, and a
                # mapping accepted later makes the rows readable (by replay).
                header = next(csv.reader([text], delimiter=delimiter))

            consumed = page_end = offset
            settled = time.time() - stat.st_mtime > 60
            text_lines: list[str] = []  # the page's lines exactly as read: its raw record

            def lines() -> Iterator[str]:
                nonlocal consumed
                for raw_line in fh:
                    if not raw_line.endswith(b"\n") and not settled:
                        return  # still being written: the next run reads it whole
                    consumed += len(raw_line)
                    hasher.update(raw_line)
                    line = _decode(raw_line)
                    text_lines.append(line)
                    yield line

            context = _FileContext(name, header, delimiter, mtime)
            rows: list[list[str]] = []
            first_row = row + 1
            for values in csv.reader(lines(), delimiter=delimiter):
                if not values or (len(values) == 1 and not values[0].strip()):
                    continue
                row += 1
                rows.append(values)
                if len(rows) >= self.page_rows:
                    yield self._page(context, files, rows, first_row, text_lines, consumed, hasher)
                    rows, first_row, text_lines[:] = [], row + 1, []
                    page_end = consumed
            if rows or consumed > page_end:
                yield self._page(context, files, rows, first_row, text_lines, consumed, hasher)

    def _page(self, context, files, rows, first_row, text_lines, offset, hasher) -> Page:
        last_row = first_row + len(rows) - 1
        state = {
            "offset": offset,
            "row": last_row,
            "sha256": hasher.hexdigest(),
            "header": context.header,
            "delimiter": context.delimiter,
        }
        name = context.name
        return Page(
            ref=f"{name} rows {first_row}-{last_row}" if rows else f"{name} (no new rows)",
            items=[context.item(first_row + i, values) for i, values in enumerate(rows)],
            cursor={"files": {**files, name: state}},
            raw={
                "file": name,
                "header": context.header,
                "delimiter": context.delimiter,
                "first_row": first_row,
                "mtime": context.mtime,
            },
            raw_body="".join(text_lines),
        )

    @staticmethod
    def _error_page(name: str, files: dict, message: str) -> Page:
        return Page(ref=name, items=[], cursor={"files": files}, error=message)

    def items_from_raw(self, payload: Any, body: str | None = None) -> list[Any]:
        context = _FileContext(
            payload["file"], payload["header"], payload["delimiter"], payload["mtime"]
        )
        rows = [
            values
            for values in csv.reader(io.StringIO(body or ""), delimiter=context.delimiter)
            if values and not (len(values) == 1 and not values[0].strip())
        ]
        return [context.item(payload["first_row"] + i, values) for i, values in enumerate(rows)]

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

    @classmethod
    def describe_cursor(cls, cursor: dict) -> str:
        files = cursor.get("files") or {}
        return ", ".join(f"{n}: row {s['row']}" for n, s in sorted(files.items())) or "start"
