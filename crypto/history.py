"""The asset history selector (/assets/{slug}/history, its CSV, the coin page's chart): the
asset's quotes in [start, end), newest first (then by source), raw or bucketed by hour or day,
paged by a cursor. Every page costs about `limit` rows, whatever the length of the history:

- raw: one index range of the unique (asset, source, observed_at) index per market source,
  each read newest first and at most `limit` long. On PostgreSQL one statement (a UNION ALL of
  the ranges, merged by the database, so only `limit` rows come back); elsewhere the ranges
  through the ORM, merged here.
- hour (and day off PostgreSQL): aggregated over a window of about `limit` steps below the
  newest quote (LatestQuote), widened only across gaps (`crypto.buckets`); one statement on
  PostgreSQL.
- day on PostgreSQL: the daily rollup (`QuoteDay`, one row per asset, source and UTC day) for
  whole days, and the quotes themselves for a day that `start`, `end` or a cursor cuts; one
  statement (`crypto.buckets`).

On PostgreSQL times travel as integers (microseconds since the epoch): parsing timestamp text
cost more than the rest of a row.
"""

# ruff: noqa: S608 - statements are built from this module's constants; values are parameters

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from django.db.models import Q

from crypto.buckets import EPOCH, MICROS, MICROSECOND, buckets, reading, utc_time
from crypto.models import QUOTE_VALUES, Asset, Quote
from kasparro.core.catalogue import MARKET, source_names

HISTORY_INTERVALS = ("raw", "hour", "day")
POINT_FIELDS = ("observed_at", *QUOTE_VALUES)


@dataclasses.dataclass(frozen=True)
class HistoryCursor:
    """Where a page of history ended: its last point's (time, source). The next page holds
    what sorts after it in (time descending, source ascending): older points, or points at
    the same time from later sources."""

    time: dt.datetime
    source: str

    def before(self, source: str) -> Q:
        """The condition on a point time of `source` for its rows to follow the cursor."""
        if source > self.source:
            return Q(observed_at__lte=self.time)
        return Q(observed_at__lt=self.time)


# A cursor is `<microseconds since the epoch>.<market source>`: every text of that shape is a
# cursor (no other check is left once the pattern holds), so the schema can state it exactly,
# and a client's tooling that fills the pattern never meets a 400.
CURSOR_PATTERN = rf"^-?[0-9]{{1,16}}\.({'|'.join(source_names(MARKET))})$"


def cursor_encode(cursor: HistoryCursor) -> str:
    return f"{(cursor.time - EPOCH) // MICROSECOND}.{cursor.source}"


def cursor_decode(text: str) -> HistoryCursor:
    """The cursor `cursor_encode` made; ValueError for anything else."""
    if not re.fullmatch(CURSOR_PATTERN, text):
        raise ValueError("not a history cursor")
    micros, source = text.split(".", 1)
    return HistoryCursor(EPOCH + int(micros) * MICROSECOND, source)


def asset_find(*, slug: str) -> Asset | None:
    """The asset named by `slug`, its own columns only (what a history needs): one query."""
    with reading(Asset).cursor() as cursor:  # the ORM's compiling cost more than the query
        cursor.execute("SELECT id FROM crypto_asset WHERE slug = %s", [slug])
        row = cursor.fetchone()
    return Asset(pk=row[0], slug=slug) if row else None


def asset_history(
    *,
    asset: Asset,
    source: str | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    interval: str,
    limit: int,
    after: HistoryCursor | None = None,
    for_json: bool = False,
) -> list[dict]:
    """The asset's quotes in [start, end), newest first (then by source); bucketed by hour or
    day on request; after `after` when paging. Raw points carry the quote's fields, buckets
    the average, min and max price, average cap and volume, and the number of quotes.

    Numbers are Decimals; `for_json` lets them be, on PostgreSQL, the text of the value in 18
    decimal places, rounded half to even (`crypto.buckets.TEXT18`): exactly what the JSON
    writes (`points_representation` reads the float from it), without a Decimal made and
    quantized per number."""
    sources = [source] if source else source_names(MARKET)
    if interval != "raw":
        return buckets(asset, sources, start=start, end=end, interval=interval, limit=limit,
                       after=after, text=for_json)  # fmt: skip
    if reading().vendor == "postgresql":
        return _raw_postgres(asset, sources, start=start, end=end, limit=limit, after=after,
                             text=for_json)  # fmt: skip
    return _raw_orm(asset, sources, start=start, end=end, limit=limit, after=after)


def _raw_orm(asset, sources, *, start, end, limit, after) -> list[dict]:
    """Each source's index range (newest first, at most `limit`) through the ORM, merged."""
    rows = []
    for name in sources:
        where = Q(asset=asset, source=name)
        if start:
            where &= Q(observed_at__gte=start)
        if end:
            where &= Q(observed_at__lt=end)
        if after:
            where &= after.before(name)
        found = Quote.objects.filter(where).order_by("-observed_at").values_list(*POINT_FIELDS)
        rows.extend((name, *row) for row in found[:limit])
    rows.sort(key=lambda r: r[0])
    rows.sort(key=lambda r: r[1], reverse=True)  # stable: source order kept
    return _raw_points(rows[:limit])


_RAW_BRANCH = (
    "(SELECT source, observed_at, price_usd, market_cap, volume_24h, price_change_24h,"
    " market_cap_rank FROM crypto_quote WHERE asset_id = %s AND source = %s{where}"
    " ORDER BY observed_at DESC LIMIT %s)"
)


def _raw_postgres(asset, sources, *, start, end, limit, after, text=False) -> list[dict]:
    """One statement: each source's index range (newest first, at most `limit`), merged by
    the database in page order; times sent as integers (parsing timestamp text cost more
    than the rest of the row)."""
    branches, params = [], []
    for name in sources:
        where, values = "", [asset.pk, name]
        if start:
            where += " AND observed_at >= %s"
            values.append(start)
        if end:
            where += " AND observed_at < %s"
            values.append(end)
        if after:
            where += " AND observed_at <= %s" if name > after.source else " AND observed_at < %s"
            values.append(after.time)
        branches.append(_RAW_BRANCH.format(where=where))
        params += [*values, limit]
    union = " UNION ALL ".join(branches)
    # The columns' 18 decimal places are already the JSON's: their text is TEXT18's.
    number = "{}::text" if text else "{}"
    numbers = ", ".join(number.format(c) for c in ("price_usd", "market_cap", "volume_24h"))
    sql = (
        f"SELECT source, {MICROS.format(column='observed_at')}, {numbers}, price_change_24h,"
        f" market_cap_rank FROM ({union}) AS page ORDER BY observed_at DESC, source LIMIT %s"
    )
    with reading().cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        return _raw_points(cursor.fetchall())


def _raw_points(rows) -> list[dict]:
    """Rows as points; a time sent as microseconds since the epoch made a UTC datetime."""
    return [
        {
            "source": source,
            "time": utc_time(time),
            "price_usd": price,
            "market_cap": cap,
            "volume_24h": volume,
            "price_change_24h": change,
            "market_cap_rank": rank,
            "samples": 1,
        }
        for source, time, price, cap, volume, change, rank in rows
    ]
