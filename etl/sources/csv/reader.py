"""The fetch side of CSV drops: every `*.csv` in `CSV_DROP_DIR`, read incrementally and
resumably, in pages of rows.

Per file the cursor keeps the absolute byte offset and row number after the last committed
page, plus the SHA-256 of the file's bytes up to that offset. On the next run, a file whose
prefix still hashes the same is read from that offset: an appended file yields only its new
rows, a half-read file resumes at its row. A file whose prefix changed is read from the start.

A file's first non-blank line is its header: a UTF-8 BOM is dropped and the delimiter (`,`,
`;`, tab or `|`) is sniffed from it; a line that is not UTF-8 is read as Windows-1252. A last
line without its newline in a file modified within the minute is still being written: the
next run reads it whole.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from etl.exceptions import SourceConfigError
from etl.sources.base import Page

BOM = b"\xef\xbb\xbf"


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


class CsvReader:
    """The fetch side of `CsvSource`, which sets `drop_dir` and `page_rows`."""

    drop_dir: Path
    page_rows: int

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

    @classmethod
    def describe_cursor(cls, cursor: dict) -> str:
        files = cursor.get("files") or {}
        return ", ".join(f"{n}: row {s['row']}" for n, s in sorted(files.items())) or "start"
