"""The CSV schema and its header mapping.

Column names vary between drops (`price`/`price_usd`/`usd_price`, `Price (USD)`, a BOM before
the first name); a header is normalised (`normalize_header`) and mapped to the schema's fields
through their aliases (`column_map`).
"""

from __future__ import annotations

import re
from functools import lru_cache

from etl.sources.base import Field

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
