"""CSV drops: every `*.csv` in `CSV_DROP_DIR`, read incrementally and resumably.

Per file the cursor keeps the absolute byte offset and row number after the last committed
page, plus the SHA-256 of the file's bytes up to that offset. On the next run, a file whose
prefix still hashes the same is read from that offset: an appended file yields only its new
rows, a half-read file resumes at its row. A file whose prefix changed is read from the start.

Column names and value formats vary (`price`/`price_usd`/`usd_price`, `$87,000`, `1.7T`,
`;` delimiters, a UTF-8 BOM): the reader sniffs the delimiter and drops the BOM, column names
are mapped through the aliases of the schema, and values are read by the normalizer's parsers.

`CsvSource`, the plug-in (the catalogue's `etl.sources.csv.CsvSource`), composes the package's
modules, one concern each:

- `schema`: the expected columns (`SCHEMA`) and their aliases, header normalisation, column
  mapping;
- `reader`: files, byte offsets, prefix hashes, BOM and delimiter sniffing, pages (`fetch`);
- `normalize`: row -> MarketItem, with a fast path for rows in the usual shape.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from etl.sources.base import Source
from etl.sources.csv.normalize import CsvNormalizer
from etl.sources.csv.reader import CsvReader
from etl.sources.csv.schema import SCHEMA, column_map, normalize_header

__all__ = ["SCHEMA", "CsvSource", "column_map", "normalize_header"]


class CsvSource(CsvReader, CsvNormalizer, Source):
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
