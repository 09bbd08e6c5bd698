"""What a source is: a name, an expected item schema, `fetch(cursor)` yielding pages, and
`normalize(item)`. Sources do no I/O beyond fetching and never touch the database."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, ClassVar

from etl.exceptions import ItemError


@dataclasses.dataclass(slots=True)
class Page:
    """One unit of atomicity: its items, its raw payload, and the cursor once it is committed."""

    ref: str
    items: list[Any]
    cursor: dict
    raw: Any = None  # JSON-serialisable payload kept as RawRecord; defaults to the items
    raw_body: str | None = None  # bulk text kept beside the payload (CSV lines)
    not_modified: bool = False  # an upstream 304: nothing to do, nothing to write
    error: str = ""  # this part of the source failed (one feed, one file); others go on

    @property
    def payload(self) -> Any:
        return self.items if self.raw is None else self.raw


@dataclasses.dataclass(slots=True)
class MarketItem:
    """A normalized market observation, before identity resolution."""

    source_key: str  # the source's own key for the coin
    symbol: str  # upper case
    name: str
    coingecko_id: str | None
    observed_at: dt.datetime
    price_usd: Decimal | None = None
    market_cap: Decimal | None = None
    volume_24h: Decimal | None = None
    price_change_24h: Decimal | None = None
    market_cap_rank: int | None = None


@dataclasses.dataclass(slots=True)
class ArticleItem:
    feed: str
    guid: str
    title: str
    url: str
    summary: str
    author: str
    published_at: dt.datetime | None
    content_hash: str


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    """One field of a source's expected item schema."""

    name: str
    type: str  # "string" | "number" | "integer" | "timestamp"
    required: bool = False
    aliases: tuple[str, ...] = ()  # other names upstreams use for it (CSV headers)
    ignored: bool = False  # sent by the upstream, not read by us: known, so never drift
    fallback: str | None = None  # another field that can stand in when this one is missing


class Source:
    name: ClassVar[str]
    kind: ClassVar[str]  # "market" or "news"
    schema: ClassVar[tuple[Field, ...]] = ()
    key_fields: ClassVar[tuple[str, ...]] = ()
    cursor_field: ClassVar[str | None] = None

    def fetch(self, cursor: dict) -> Iterator[Page]:
        raise NotImplementedError

    # True when every value arrives as text (CSV): numbers as text are then not drift.
    text_values: ClassVar[bool] = False
    # True when items carry only some of the optional fields (CSV columns vary by file).
    sparse: ClassVar[bool] = False
    # True when all the items of a page share one shape (a CSV page: one file, one header), so
    # drift detection may look at a sample of them.
    uniform_pages: ClassVar[bool] = False

    def observe(self, item: Any) -> dict | None:
        """The item as field -> value, for drift detection (None: not an object)."""
        return item if isinstance(item, dict) else None

    def apply_mappings(self, item: Any, mappings: dict[str, str]) -> Any:
        """Accepted renames: `to` takes the value of `from` when it has none of its own."""
        if not isinstance(item, dict):
            return item
        mapped = dict(item)
        for source_name, target in mappings.items():
            if source_name in item and mapped.get(target) in (None, ""):
                mapped[target] = item[source_name]
        return mapped

    def normalize(self, item: Any) -> MarketItem | ArticleItem:
        """Turn one raw item into a normalized one, or raise ItemError."""
        raise NotImplementedError

    def normalize_many(self, items: list[Any]) -> Iterator[tuple[Any, Any]]:
        """(item, normalized item or ItemError) for each item. Sources may add a fast path."""
        for item in items:
            try:
                yield item, self.normalize(item)
            except ItemError as exc:
                yield item, exc

    def items_from_raw(self, payload: Any, body: str | None = None) -> list[Any]:
        """The items of a stored raw record (for replay without calling upstream)."""
        return list(payload)

    @classmethod
    def describe_cursor(cls, cursor: dict) -> str:
        return str(cursor) if cursor else "start"
