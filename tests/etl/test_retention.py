"""Retention of raw pages (`etl prune`, the `etl.prune` beat task): old pages and their bodies
go in batches, what a replay needs stays, and replay still works after."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from etl.models import DriftEvent, QuarantinedRecord, RawBody, RawRecord, SourcePolicy
from etl.pipeline.replay import drift_replay, quarantine_replay
from etl.services.drift import drift_accept
from etl.services.raw_records import raw_page_prepare
from etl.services.retention import DEFAULT_BATCH, raw_records_prune
from etl.services.schedules import PRUNE_NAME, schedules_ensure
from etl.tasks import prune
from tests.etl.test_raw_records import csv_quotes, prices, run

pytestmark = pytest.mark.django_db


def age(queryset=None, days: int = 40) -> None:
    """Pages last fetched `days` ago."""
    (RawRecord.objects.all() if queryset is None else queryset).update(
        last_seen_at=timezone.now() - dt.timedelta(days=days)
    )


def prune_command(*args: str) -> str:
    out = io.StringIO()
    call_command("etl", "prune", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def drop(coingecko, empty_csv_drop, settings):
    """CoinGecko's assets known; CSV pages of 4 rows."""
    run("coingecko")
    settings.CSV_PAGE_ROWS = 4
    return empty_csv_drop


# --- Prune ---------------------------------------------------------------------------------------


def test_prune_deletes_old_pages_and_their_bodies_keeps_young_ones(drop):
    (drop / "old.csv").write_text(prices(range(6)))  # 12 rows: 3 pages
    assert run("csv").items_inserted == 12
    age()
    (drop / "young.csv").write_text(prices(range(100, 102)))  # 4 rows: 1 page
    assert run("csv").items_inserted == 4
    young = set(RawRecord.objects.filter(last_seen_at__gte=timezone.now() - dt.timedelta(1)))
    assert len(young) == 1 and RawRecord.objects.filter(source="csv").count() == 4
    quotes = csv_quotes()

    out = prune_command()  # the default batch size

    assert set(RawRecord.objects.all()) == young
    assert RawBody.objects.count() == 1  # the young page's
    assert csv_quotes() == quotes  # the data itself is never touched
    assert "deleted: 5 page(s)" in out  # 3 CSV pages, 2 CoinGecko pages
    assert "3 page body(ies)" in out and "in 1 batch(es)" in out
    assert "etl_rawrecord: 6 rows" in out and "-> 1 rows" in out
    assert "etl_rawbody: 4 rows" in out
    # Nothing left to do: a second prune deletes nothing.
    assert "deleted: 0 page(s)" in prune_command()


def test_dry_run_says_what_would_go_and_deletes_nothing(drop):
    (drop / "old.csv").write_text(prices(range(6)))
    run("csv")
    age()
    pages, bodies = RawRecord.objects.count(), RawBody.objects.count()

    out = prune_command("--dry-run")

    assert "would delete: 5 page(s)" in out and "3 page body(ies)" in out
    assert "dry run: nothing deleted" in out
    assert (RawRecord.objects.count(), RawBody.objects.count()) == (pages, bodies)
    assert "deleted: 5 page(s)" in prune_command()  # what the dry run announced


def test_retention_days_come_from_settings_and_zero_keeps_everything(drop, settings):
    (drop / "a.csv").write_text(prices(range(2)))
    run("csv")
    age(days=10)
    settings.ETL_RAW_RETENTION_DAYS = 30
    assert raw_records_prune().pages == 0
    settings.ETL_RAW_RETENTION_DAYS = 0
    assert "retention is off" in prune_command()
    assert RawRecord.objects.count() == 3
    settings.ETL_RAW_RETENTION_DAYS = 7
    assert raw_records_prune().pages == 3
    assert "deleted: 0 page(s)" in prune_command("--days", "1")


def test_prune_works_in_batches(drop):
    (drop / "old.csv").write_text(prices(range(10)))  # 20 rows: 5 pages
    run("csv")
    age()
    report = raw_records_prune(batch_size=2)
    assert (report.pages, report.batches) == (7, 4)  # 5 CSV + 2 CoinGecko pages
    assert not RawRecord.objects.exists() and not RawBody.objects.exists()
    assert report.after["etl_rawrecord"].rows == 0
    assert report.before["etl_rawrecord"].data_bytes > report.after["etl_rawrecord"].data_bytes
    assert report.before["etl_rawbody"].data_bytes > 0 == report.after["etl_rawbody"].data_bytes
    assert DEFAULT_BATCH >= 1000


def test_a_page_fetched_again_counts_from_its_last_fetch(coingecko):
    run("coingecko")
    age()
    assert run("coingecko").items_unchanged > 0  # the same two pages, fetched again
    assert raw_records_prune().pages == 0
    assert RawRecord.objects.count() == 2


# --- What replay needs ---------------------------------------------------------------------------


def test_pages_an_open_drift_event_needs_are_kept_and_replay_works_after_prune(drop):
    (drop / "plain.csv").write_text(prices(range(4)))
    run("csv")
    SourcePolicy.objects.update_or_create(source="csv", defaults={"drift_policy": "freeze"})
    (drop / "renamed.csv").write_text(
        "coin_id,name,priceUSD,updatedAt\n"
        "bitcoin,Bitcoin,87000,2025-12-28T01:00:00Z\n"
        "ethereum,Ethereum,2900,2025-12-28T01:00:00Z\n"
    )
    drifted = run("csv")
    assert drifted.items_quarantined == 2
    needed = set(RawRecord.objects.filter(run=drifted))
    assert len(needed) == 1
    age()

    report = raw_records_prune()

    assert set(RawRecord.objects.all()) == needed  # plain.csv's and CoinGecko's pages went
    assert report.kept_for_replay == 1
    # Accepted by an operator but not replayed yet: still needed.
    operator = get_user_model().objects.create_user("ops")
    for event in DriftEvent.objects.filter(source="csv"):
        drift_accept(event_id=event.pk, user=operator)
    assert raw_records_prune().pages == 0

    events = DriftEvent.objects.filter(source="csv").order_by("pk")
    assert events.count() > 1  # two renamed columns
    replays = [drift_replay(event_id=event.pk) for event in events]

    assert [(r.status, r.items_inserted) for r in replays][:2] == [("success", 2), ("success", 0)]
    assert ("bitcoin", 87000) in {(slug, price) for slug, _, price in csv_quotes()}
    # Replayed: nothing needs the page any more.
    age()
    assert raw_records_prune().pages == 1
    assert not RawRecord.objects.exists()


def test_the_page_of_an_open_quarantined_item_is_kept_until_it_is_resolved(drop):
    (drop / "drop.csv").write_text("symbol,name,price\nzzzz,Nothing,1\n")  # nobody's symbol
    run("csv")
    item = QuarantinedRecord.objects.get(reason_code="unknown_asset")
    page = item.raw_record
    assert page is not None
    age()

    assert raw_records_prune().pages == 2  # CoinGecko's pages; not the quarantined item's
    assert list(RawRecord.objects.all()) == [page]

    assert quarantine_replay(ids=[item.pk])["still_quarantined"] == 1  # still open
    assert raw_records_prune().pages == 0
    QuarantinedRecord.objects.filter(pk=item.pk).update(status=QuarantinedRecord.Status.DISCARDED)
    assert raw_records_prune().pages == 1
    item.refresh_from_db()
    assert item.raw_record is None  # the item keeps its own copy
    assert quarantine_replay(ids=[item.pk])["still_quarantined"] == 1


def test_pruning_a_files_pages_keeps_the_bodies_a_copy_shares(drop):
    (drop / "monday.csv").write_text(prices(range(6)))  # 3 pages
    first = run("csv")
    shutil.copy(drop / "monday.csv", drop / "monday-again.csv")
    second = run("csv")
    texts = [r.body_text for r in RawRecord.objects.filter(run=first).order_by("pk")]
    age(RawRecord.objects.filter(run=first))
    assert (raw_records_prune(dry_run=True).pages, raw_records_prune(dry_run=True).bodies) == (3, 0)

    assert raw_records_prune().pages == 3

    assert RawBody.objects.count() == 3
    left = RawRecord.objects.filter(source="csv").order_by("pk")
    assert [(r.run_id, r.body_text) for r in left] == [(second.id, text) for text in texts]


# --- Beat --------------------------------------------------------------------------------------


def test_the_beat_runs_the_prune_daily(drop, settings):
    task = PeriodicTask.objects.get(name=PRUNE_NAME)  # created by migrate
    assert task.task == PRUNE_NAME and task.interval is None
    assert (task.crontab.hour, task.crontab.minute) == ("3", "40")
    task.delete()
    assert schedules_ensure() == [PRUNE_NAME]

    (drop / "old.csv").write_text(prices(range(2)))
    run("csv")
    age()
    assert prune.apply().get() == {"pages": 3, "bodies": 1, "kept": 0, "runs": 0}
    assert not RawRecord.objects.exists()


# --- Beside a running ingestion ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_prune_passes_by_a_page_an_ingestion_is_storing_again_without_waiting(coingecko):
    """PostgreSQL: a page transaction re-using an old page holds its row; the prune skips it
    (no waiting, no lost page) and the page comes out fresh."""
    from django.db import connection, connections, transaction

    from etl.services.raw_records import raw_record_store

    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one writer at a time: nothing to pass by")
    first = run("coingecko")
    age()
    held = RawRecord.objects.order_by("pk").first()
    storing, release = threading.Event(), threading.Event()

    def page_transaction() -> None:
        try:
            with transaction.atomic():
                raw_record_store(
                    source="coingecko",
                    payload=held.payload,
                    raw=raw_page_prepare(held.payload, None),
                    item_count=held.item_count,
                    page_ref=held.page_ref,
                    run_id=first.id,
                )
                storing.set()
                release.wait(30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=page_transaction)
    thread.start()
    try:
        assert storing.wait(10)
        started = time.monotonic()
        report = raw_records_prune()
        assert time.monotonic() - started < 5
    finally:
        release.set()
        thread.join(30)

    assert report.pages == 1  # the other page
    assert list(RawRecord.objects.all()) == [held]
    assert RawRecord.objects.get().last_seen_at > timezone.now() - dt.timedelta(minutes=1)


@pytest.mark.django_db(transaction=True)
def test_prune_keeps_a_body_an_ingestion_is_sharing_right_now(coingecko, empty_csv_drop):
    """PostgreSQL: the last page of a body goes while a page transaction is storing another
    page with the same text; the prune leaves the body (locked) and the new page keeps it."""
    from django.db import connection, connections, transaction

    from etl.services.raw_records import raw_record_store

    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one writer at a time: nothing to pass by")
    run("coingecko")
    (empty_csv_drop / "a.csv").write_text(prices(range(2)))
    first = run("csv")
    old = RawRecord.objects.select_related("body").get(run=first)
    age()
    storing, release = threading.Event(), threading.Event()
    payload = {**old.payload, "file": "b.csv"}

    def page_transaction() -> None:
        try:
            with transaction.atomic():
                raw_record_store(
                    source="csv",
                    payload=payload,
                    raw=raw_page_prepare(payload, old.body_text),
                    item_count=old.item_count,
                    page_ref="b.csv rows 1-4",
                    run_id=first.id,
                )
                storing.set()
                release.wait(30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=page_transaction)
    thread.start()
    try:
        assert storing.wait(10)
        started = time.monotonic()
        report = raw_records_prune()
        assert time.monotonic() - started < 5
    finally:
        release.set()
        thread.join(30)

    assert (report.pages, report.bodies) == (3, 0)  # a.csv's page and CoinGecko's two
    kept = RawRecord.objects.select_related("body").get()
    assert (kept.page_ref, kept.body_id, kept.body_text) == (
        "b.csv rows 1-4",
        old.body_id,
        old.body_text,
    )
