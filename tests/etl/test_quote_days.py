"""The daily rollup of quotes (QuoteDay, PostgreSQL's triggers) equals an aggregate of the
quotes after every way quotes are written: loads of new quotes (the optimistic INSERT and the
upsert), corrected values, a page mixing both, replays, the same CSV file ingested again,
edits and deletes in admin, an asset's cascade; and the history by day read from it equals
the aggregate, whatever the window and the cursor (and so do hours aggregated in one statement,
and raw points read in one, against the ORM's)."""

from __future__ import annotations

import datetime as dt
import random
import shutil
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import TruncDay

from crypto.buckets import _aggregated, _days_postgres, _OrmWindow
from crypto.history import HistoryCursor, _raw_orm, _raw_postgres
from crypto.models import Asset, Quote, QuoteDay
from etl.pipeline.load.quotes import quotes_upsert
from etl.pipeline.run import ingest_run
from etl.sources.base import MarketItem
from runs.models import Run
from tests.conftest import FIXTURES

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the rollup is PostgreSQL's (SQLite aggregates)"
    ),
]

DAY0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def rollup() -> list[tuple]:
    return sorted(
        QuoteDay.objects.values_list(
            "asset_id", "source", "day", "samples", "price_count", "price_sum", "price_min",
            "price_max", "cap_count", "cap_sum", "volume_count", "volume_sum",
        )
    )  # fmt: skip


def aggregate() -> list[tuple]:
    rows = (
        Quote.objects.annotate(day=TruncDay("observed_at", tzinfo=dt.UTC))
        .values("asset_id", "source", "day")
        .annotate(
            n=Count("id"), pn=Count("price_usd"), ps=Sum("price_usd"), lo=Min("price_usd"),
            hi=Max("price_usd"), cn=Count("market_cap"), cs=Sum("market_cap"),
            vn=Count("volume_24h"), vs=Sum("volume_24h"),
        )
    )  # fmt: skip
    return sorted(
        (r["asset_id"], r["source"], r["day"], r["n"], r["pn"], r["ps"], r["lo"], r["hi"],
         r["cn"], r["cs"], r["vn"], r["vs"])
        for r in rows
    )  # fmt: skip


def assert_exact() -> None:
    # A sum the deltas brought to zero may differ from a fresh sum only in being 0, not NULL.
    def same(rows):
        return [
            tuple(None if v == 0 and i in (5, 9, 11) and r[i - 1] == 0 else v
                  for i, v in enumerate(r))
            for r in rows
        ]  # fmt: skip

    assert same(rollup()) == same(aggregate())


def item(key: str, when: dt.datetime, rng: random.Random, *, nulls: bool = True) -> MarketItem:
    def number(low, high):
        if nulls and rng.random() < 0.15:
            return None
        return Decimal(rng.randrange(low, high)) / Decimal(10 ** rng.randrange(0, 19))

    return MarketItem(
        source_key=key, symbol=key.upper(), name=key, coingecko_id=key, observed_at=when,
        price_usd=number(1, 10**9), market_cap=number(10**6, 10**15),
        volume_24h=number(1, 10**12), price_change_24h=None, market_cap_rank=None,
    )  # fmt: skip


def load(items: list[MarketItem], assets: dict[str, Asset], source: str = "coingecko"):
    rows = [(assets[i.source_key].pk, i) for i in items]
    return quotes_upsert(source=source, rows=rows)


@pytest.fixture
def assets() -> dict[str, Asset]:
    return {
        key: Asset.objects.create(slug=key, symbol=key.upper(), name=key)
        for key in ("alpha", "beta", "gamma")
    }


def test_loads_inserts_updates_and_replays_keep_the_rollup_exact(assets):
    rng = random.Random(5)
    times = [DAY0 + dt.timedelta(minutes=37 * i) for i in range(400)]  # ~10 days
    first = [item(k, t, rng) for k in assets for t in times]  # 1,200: the optimistic INSERT
    assert load(first, assets).inserted == 1200
    assert_exact()
    assert load(first[:50], assets).unchanged == 50  # a replay changes nothing
    assert_exact()
    # One statement of new quotes and corrections, corrections that lower and raise the
    # day's min and max, and values set to null and back.
    mixed = [item(k, DAY0 - dt.timedelta(hours=h), rng) for k in assets for h in range(1, 30)]
    for old in rng.sample(first, 200):
        fresh = item(old.source_key, old.observed_at, rng)
        if rng.random() < 0.2:
            fresh.price_usd = Decimal("0.000000000000000001")
        mixed.append(fresh)
    result = load(mixed, assets)
    assert result.inserted == 87 and result.updated > 150
    assert_exact()
    for _ in range(3):  # small pages, the upsert's path: corrections only
        load([item(o.source_key, o.observed_at, rng) for o in rng.sample(first, 30)], assets)
        assert_exact()
    load(first, assets)  # the first values again
    assert_exact()
    load([item(k, t, rng) for k in assets for t in times[:20]], assets, source="csv")
    assert_exact()
    assert QuoteDay.objects.filter(source="csv").exists()


def test_admin_edits_deletes_and_cascades_keep_the_rollup_exact(assets):
    rng = random.Random(8)
    load([item(k, DAY0 + dt.timedelta(hours=5 * i), rng) for k in assets for i in range(60)],
         assets)  # fmt: skip
    quote = Quote.objects.filter(asset=assets["alpha"]).order_by("observed_at")[3]
    quote.observed_at += dt.timedelta(days=4)  # moved to another day
    quote.price_usd = Decimal("123456789.5")
    quote.save()
    assert_exact()
    quote.delete()
    assert_exact()
    Quote.objects.filter(asset=assets["beta"], observed_at__lt=DAY0 + dt.timedelta(days=3)).delete()
    assert_exact()
    # A whole day's quotes gone: its row goes too.
    assert not QuoteDay.objects.filter(asset=assets["beta"], day=DAY0).exists()
    Quote.objects.filter(asset=assets["gamma"]).update(market_cap=None)
    assert_exact()
    assets["gamma"].delete()
    assert_exact()
    assert not QuoteDay.objects.filter(asset_id=assets["gamma"].pk).exists()


def test_the_same_csv_file_ingested_again_keeps_the_rollup_exact(empty_csv_drop):
    shutil.copy(FIXTURES / "csv" / "coingecko_top100_2025-12-28.csv", empty_csv_drop / "a.csv")
    assert ingest_run(source_name="csv", trigger=Run.Trigger.CLI).status == "success"
    assert_exact()
    before = rollup()
    assert before
    shutil.copy(FIXTURES / "csv" / "coingecko_top100_2025-12-28.csv", empty_csv_drop / "b.csv")
    assert ingest_run(source_name="csv", trigger=Run.Trigger.CLI).status == "success"
    assert rollup() == before
    assert_exact()


def test_points_read_in_one_statement_equal_the_orm_s_for_any_window_and_cursor(assets):
    rng = random.Random(13)
    times = [DAY0 + dt.timedelta(minutes=rng.randrange(60 * 24 * 30)) for _ in range(900)]
    load([item("alpha", t, rng) for t in times], assets)
    load([item("alpha", t, rng) for t in times[::3]], assets, source="csv")
    asset, sources = assets["alpha"], ["coingecko", "csv"]

    def moment():
        return DAY0 + dt.timedelta(minutes=rng.choice([0, rng.randrange(60 * 24 * 32)]) // 1)

    for case in range(300):
        start = rng.choice([None, moment(), DAY0 + dt.timedelta(days=rng.randrange(32))])
        end = rng.choice([None, moment(), DAY0 + dt.timedelta(days=rng.randrange(32))])
        after = None
        if rng.random() < 0.5:
            cut = rng.choice([moment(), DAY0 + dt.timedelta(days=rng.randrange(32))])
            after = HistoryCursor(cut, rng.choice(sources))
        chosen = rng.choice([sources, ["csv"], ["coingecko"]])
        limit = rng.choice([1, 3, 10, 40, 500])
        args = {"start": start, "end": end, "limit": limit, "after": after}
        expected = _aggregated(asset, chosen, interval="day", window=_OrmWindow, **args)
        assert _days_postgres(asset, chosen, **args) == expected, (case, args, chosen)
        # Hours in one statement, buckets made of the epoch, equal the ORM's TruncHour.
        hours = _aggregated(asset, chosen, interval="hour", window=_OrmWindow, **args)
        assert _aggregated(asset, chosen, interval="hour", **args) == hours, (case, args)
        # Raw points too: one statement merging the sources equals the ranges merged here.
        assert _raw_postgres(asset, chosen, **args) == _raw_orm(asset, chosen, **args)
    assert Quote.objects.filter(~Q(source__in=sources)).count() == 0


def test_numbers_sent_as_text_write_the_same_json(assets):
    """asset_history(for_json=True) sends numbers as text rounded in SQL: the JSON is the
    one the Decimals give, ties at the 19th decimal (rounded half to even) and every
    magnitude included."""
    from rest_framework.renderers import JSONRenderer

    from crypto.history import asset_history
    from crypto.serializers import points_representation

    rng = random.Random(21)
    values = ["0.000000000000000002", "0.000000000000000003", "0.000000000000000001",
              "0.000007212345678901", "87645.5", "1750000002240.123456789", "0.1", "3"]  # fmt: skip
    items = []
    for minute in range(0, 60 * 24 * 3, 20):
        when = DAY0 + dt.timedelta(minutes=minute)
        one = item("alpha", when, rng)
        one.price_usd = Decimal(rng.choice(values))
        one.market_cap = rng.choice([None, Decimal(rng.choice(values))])
        items.append(one)
    load(items, assets)
    load(items[::2], assets, source="csv")
    asset = assets["alpha"]
    for interval in ("raw", "hour", "day"):
        for start in (None, DAY0 + dt.timedelta(hours=7, minutes=10)):
            args = {"asset": asset, "source": None, "start": start, "end": None,
                    "interval": interval, "limit": 5000}  # fmt: skip
            exact = asset_history(**args)
            sent = asset_history(**args, for_json=True)
            assert any(type(p["price_usd"]) is str for p in sent)
            assert JSONRenderer().render(points_representation(sent)) == JSONRenderer().render(
                points_representation(exact)
            ), (interval, start)


def test_the_migration_fills_the_rollup_from_the_quotes_there_are(assets):
    import importlib

    migration = importlib.import_module("crypto.migrations.0005_quote_day")
    rng = random.Random(34)
    load([item(k, DAY0 + dt.timedelta(minutes=47 * i), rng) for k in assets for i in range(90)],
         assets)  # fmt: skip
    kept = rollup()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM crypto_quoteday")
        cursor.execute(migration.BACKFILL)
    assert rollup() == kept
    assert_exact()
