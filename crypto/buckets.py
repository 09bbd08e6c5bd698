"""History buckets (`interval=hour` or `day`, see `crypto.history`): per bucket and market
source the average, min and max price, average cap and volume, and the number of quotes, the
newest `limit` (bucket, source) pairs first. Each page costs about `limit` buckets:

- on PostgreSQL a day is read from the daily rollup (`QuoteDay`, kept by triggers in every
  writing transaction), except a day that `start`, `end` or a cursor cuts, aggregated from its
  quotes; one statement, `limit` rows back. The rollup keeps sums and non-null counts, so each
  average is the very division PostgreSQL's AVG makes: the same answer as the aggregate;
- otherwise (hours, and days on SQLite) the quotes are aggregated over a window of about
  `limit` steps below the newest quote, widened only across gaps: on PostgreSQL one statement
  (buckets made of the epoch: UTC hours and days are whole multiples of it), the ORM elsewhere.

Times come back as integers (microseconds since the epoch) and, for JSON, numbers as text
(TEXT18): parsing timestamp text and making and quantizing Decimals cost more than the rest.
"""

# ruff: noqa: S608 - statements are built from this module's constants; values are parameters

from __future__ import annotations

import datetime as dt

from django.db import connections, router
from django.db.models import Avg, Count, Max, Min, Q
from django.db.models.functions import TruncDay, TruncHour

from crypto.models import LatestQuote, Quote

STEPS = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}
DAY = STEPS["day"]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICROSECOND = dt.timedelta(microseconds=1)
# A timestamp sent as microseconds since the epoch.
MICROS = "(extract(epoch FROM {column}) * 1000000)::bigint"
# A number as the text of its value in 18 decimal places, rounded half to even: what the JSON
# writes (DRF's DecimalField(decimal_places=18) quantizes so, then the renderer takes the
# float), sent so that the float is read from it, without a Decimal made and quantized.
TEXT18 = (
    "CASE WHEN scale({x}) <= 18 THEN {x}::text"
    " WHEN abs({x} - trunc({x}, 18)) = 0.0000000000000000005"
    " AND mod(trunc({x} * 1000000000000000000), 2) = 0 THEN trunc({x}, 18)::text"
    " ELSE round({x}, 18)::text END"
)


def as_text(sql: str) -> str:
    """A bucket statement (source, time, price, min, max, cap, volume, samples) with its
    numbers sent as TEXT18 text, in the same order."""
    numbers = ", ".join(TEXT18.format(x=column) for column in ("p", "lo", "hi", "c", "v"))
    return (
        f"SELECT s, t, {numbers}, n FROM ({sql}) AS b (s, t, p, lo, hi, c, v, n) ORDER BY t DESC, s"
    )


def reading(model=Quote):
    """The connection that reads `model` here: the replica in a request marked for it
    (`kasparro.core.db_router`), like the ORM's reads; statements written here go through it."""
    return connections[router.db_for_read(model)]


def buckets(asset, sources, *, start, end, interval, limit, after, text=False) -> list[dict]:
    """The newest `limit` (bucket, source) pairs of `sources` in [start, end), after `after`;
    with `text`, on PostgreSQL, numbers as TEXT18 text instead of Decimals."""
    if interval == "day" and reading().vendor == "postgresql":
        return _days_postgres(asset, sources, start=start, end=end, limit=limit, after=after,
                              text=text)  # fmt: skip
    return _aggregated(asset, sources, start=start, end=end, interval=interval, limit=limit,
                       after=after, text=text)  # fmt: skip


def _floor(moment: dt.datetime, interval: str) -> dt.datetime:
    moment = moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if interval == "day" else moment


# --- Days on PostgreSQL: the rollup, and the quotes of a day cut short -------------------------

# Each average is AVG's own division (sum / count of the non-null values; null for none).
_WHOLE_DAYS = f"""(SELECT source, {MICROS.format(column="day")},
    CASE WHEN price_count > 0 THEN price_sum / price_count END, price_min, price_max,
    CASE WHEN cap_count > 0 THEN cap_sum / cap_count END,
    CASE WHEN volume_count > 0 THEN volume_sum / volume_count END,
    samples FROM crypto_quoteday WHERE asset_id = %s AND ({{days}}))"""
_CUT_DAY = (
    "(SELECT source, %s::bigint, avg(price_usd), min(price_usd), max(price_usd),"
    " avg(market_cap), avg(volume_24h), count(*) FROM crypto_quote"
    " WHERE asset_id = %s AND source = %s AND observed_at >= %s AND observed_at < %s"
    " GROUP BY source)"
)


def _days_postgres(asset, sources, *, start, end, limit, after, text=False) -> list[dict]:
    """Per source, its range [start, upper) (upper: `end`, or where the cursor cuts) is whole
    days read from the rollup and at most two days cut short, aggregated from their quotes."""
    days, day_params, parts, params = [], [], [], []
    for name in sources:
        upper = end
        if after:  # a cursor on a day: that day for later sources, the days before it for others
            bound = after.time + DAY if name > after.source else after.time
            upper = bound if upper is None else min(upper, bound)
        first = start and _floor(start, "day")
        first = first if not start or first == start else first + DAY  # the first whole day
        last = upper and _floor(upper, "day")  # whole days end there
        if not (first and last and first >= last):
            where = "source = %s"
            day_params.append(name)
            if first:
                where += " AND day >= %s"
                day_params.append(first)
            if last:
                where += " AND day < %s"
                day_params.append(last)
            days.append(f"({where})")
        cut = set()
        if start and first != start:
            cut.add((start, first if upper is None else min(first, upper)))
        if upper and last != upper:
            cut.add((last if start is None else max(last, start), upper))
        for low, high in sorted(cut):
            if low < high:
                parts.append(_CUT_DAY)
                params += [(_floor(low, "day") - EPOCH) // MICROSECOND, asset.pk, name, low, high]
    if days:
        parts.insert(0, _WHOLE_DAYS.format(days=" OR ".join(days)))
        params[:0] = [asset.pk, *day_params]
    if not parts:
        return []
    sql = " UNION ALL ".join(parts) + " ORDER BY 2 DESC, 1 LIMIT %s"
    with reading().cursor() as cursor:
        sql = as_text(sql) if text else sql
        cursor.execute(sql, [*params, limit])
        return _points(cursor.fetchall())


def utc_time(value):
    """A time as the statements here send it: microseconds since the epoch (no timestamp text
    to parse) made a UTC datetime; a datetime (another backend) as it is."""
    return value if type(value) is not int else EPOCH + value * MICROSECOND


def _points(rows) -> list[dict]:
    """Bucket rows as points; a bucket time sent as microseconds since the epoch (what the
    statements here send: no timestamp text to parse) made a UTC datetime."""
    return [
        {
            "source": source,
            "time": utc_time(bucket),
            "price_usd": price,
            "price_min": low,
            "price_max": high,
            "market_cap": cap,
            "volume_24h": volume,
            "samples": samples,
        }
        for source, bucket, price, low, high, cap, volume, samples in rows
    ]


# --- Aggregated from the quotes: a window of about `limit` steps ------------------------------


def _aggregated(
    asset, sources, *, start, end, interval, limit, after, window=None, text=False
) -> list[dict]:
    """The newest `limit` (bucket, source) pairs, aggregated from an index range: first the
    `limit` steps below the newest bucket that can show (all it takes when a source has a
    quote every step), widened by doubling only while the window holds fewer pairs and older
    quotes exist (gaps in the series). Every quote outside the window is older than every
    bucket in it, so a window holding `limit` pairs holds the answer."""
    step = STEPS[interval]
    newest = _newest(asset, sources, postgres=window is None and reading().vendor == "postgresql")
    uppers, top = {}, None  # per source, its quotes in [start, upper)
    for name in sources:
        if name not in newest:  # no quote of it (LatestQuote is kept with every load)
            continue
        last = _floor(newest[name], interval)  # the newest bucket this page can show
        if end:
            last = min(last, _floor(end - dt.timedelta(microseconds=1), interval))
        if after:
            # Buckets before the cursor's, or the cursor's own bucket for later sources.
            last = min(last, after.time if name > after.source else after.time - step)
        uppers[name] = last + step if end is None else min(end, last + step)
        top = last if top is None else max(top, last)
    if top is None:
        return []
    window = window or (_Window if reading().vendor == "postgresql" else _OrmWindow)
    reader = window(asset, uppers, start=start, interval=interval)
    reader.text = text
    span = limit * step
    while True:
        floor = top - span + step
        rows = reader.rows(floor, limit)
        if len(rows) == limit or not reader.older(floor):
            return rows
        span *= 2


def _newest(asset, sources, *, postgres) -> dict[str, dt.datetime]:
    """The newest quote's time per source (LatestQuote): on PostgreSQL one plain statement,
    its times sent as integers."""
    if not postgres:
        found = LatestQuote.objects.filter(asset=asset, source__in=sources)
        return dict(found.values_list("source", "observed_at"))
    marks = ", ".join(["%s"] * len(sources))
    with reading(LatestQuote).cursor() as cursor:
        cursor.execute(
            f"SELECT source, {MICROS.format(column='observed_at')} FROM crypto_latestquote"
            f" WHERE asset_id = %s AND source IN ({marks})",
            [asset.pk, *sources],
        )
        return {source: EPOCH + micros * MICROSECOND for source, micros in cursor.fetchall()}


class _Window:
    """The buckets of the quotes at or after a floor, on PostgreSQL: one statement, buckets
    made of the epoch (UTC hours and days are whole multiples of it) and sent as integers."""

    def __init__(self, asset, uppers, *, start, interval) -> None:
        ranges = " OR ".join("(source = %s AND observed_at < %s)" for _ in uppers)
        self.where = f"asset_id = %s AND ({ranges})" + (" AND observed_at >= %s" if start else "")
        self.params = [asset.pk, *(v for pair in uppers.items() for v in pair)]
        self.params += [start] if start else []
        self.seconds = int(STEPS[interval].total_seconds())

    def rows(self, floor, limit) -> list[dict]:
        bucket = f"floor(extract(epoch FROM observed_at) / {self.seconds})::bigint"
        sql = (
            f"SELECT source, {bucket} * {self.seconds * 1_000_000}, avg(price_usd),"
            " min(price_usd), max(price_usd), avg(market_cap), avg(volume_24h), count(*)"
            f" FROM crypto_quote WHERE {self.where} AND observed_at >= %s"
            " GROUP BY 1, 2 ORDER BY 2 DESC, 1 LIMIT %s"
        )
        sql = as_text(sql) if self.text else sql
        with reading().cursor() as cursor:
            cursor.execute(sql, [*self.params, floor, limit])
            return _points(cursor.fetchall())

    def older(self, floor) -> bool:
        sql = f"SELECT EXISTS (SELECT 1 FROM crypto_quote WHERE {self.where} AND observed_at < %s)"
        with reading().cursor() as cursor:
            cursor.execute(sql, [*self.params, floor])
            return cursor.fetchone()[0]


class _OrmWindow:
    """The same through the ORM (SQLite): TruncHour / TruncDay in the current time zone."""

    def __init__(self, asset, uppers, *, start, interval) -> None:
        self.which = Q()
        for name, upper in uppers.items():
            self.which |= Q(asset=asset, source=name, observed_at__lt=upper)
        if start:
            self.which &= Q(observed_at__gte=start)
        self.trunc = TruncHour if interval == "hour" else TruncDay

    def rows(self, floor, limit) -> list[dict]:
        found = (
            Quote.objects.filter(self.which, observed_at__gte=floor)
            .annotate(bucket=self.trunc("observed_at"))
            .values("source", "bucket")
            .annotate(
                avg_price=Avg("price_usd"),
                min_price=Min("price_usd"),
                max_price=Max("price_usd"),
                avg_cap=Avg("market_cap"),
                avg_volume=Avg("volume_24h"),
                samples=Count("id"),
            )
            .order_by("-bucket", "source")
            .values_list(
                "source", "bucket", "avg_price", "min_price", "max_price", "avg_cap",
                "avg_volume", "samples",
            )
        )  # fmt: skip
        return _points(found[:limit])

    def older(self, floor) -> bool:
        return Quote.objects.filter(self.which, observed_at__lt=floor).exists()
