"""Raw pages kept once per content: a page's body (CSV lines) is stored once whatever the file
it came from, each page keeps its own file name and rows for replay, and resuming from the
checkpoint is unchanged."""

from __future__ import annotations

import shutil

import pytest

from crypto.models import Quote
from etl.faults import FaultPlan
from etl.models import Checkpoint, RawBody, RawRecord
from etl.pipeline.replay import runs_replay
from etl.pipeline.run import ingest_run
from runs.models import Run

pytestmark = pytest.mark.django_db

HEADER = "coin_id,symbol,name,price_usd,last_updated\n"


def prices(hours: range, price: int = 87000) -> str:
    lines = [HEADER]
    for hour in hours:
        stamp = f"2025-12-{1 + hour // 24:02d}T{hour % 24:02d}:00:00Z"
        lines.append(f"bitcoin,btc,Bitcoin,{price + hour},{stamp}\n")
        lines.append(f"ethereum,eth,Ethereum,{2900 + hour},{stamp}\n")
    return "".join(lines)


def run(source: str, faults: str | None = None) -> Run:
    plan = FaultPlan.parse(faults) if faults else None
    return ingest_run(source_name=source, trigger=Run.Trigger.CLI, faults=plan)


def csv_quotes() -> list[tuple]:
    return sorted(
        Quote.objects.filter(source="csv").values_list("asset__slug", "observed_at", "price_usd")
    )


@pytest.fixture
def drop(coingecko, empty_csv_drop, settings):
    """CoinGecko's assets known; CSV pages of 4 rows."""
    run("coingecko")
    settings.CSV_PAGE_ROWS = 4
    return empty_csv_drop


def test_the_same_file_under_another_name_stores_its_bodies_once(drop):
    content = prices(range(6))  # 12 rows: 3 pages
    (drop / "monday.csv").write_text(content)
    first = run("csv")
    assert first.items_inserted == 12
    bodies = RawBody.objects.count()
    body_bytes = sum(RawBody.objects.values_list("size", flat=True))
    quotes = csv_quotes()
    texts = [r.body_text for r in RawRecord.objects.filter(run=first).order_by("pk")]

    shutil.copy(drop / "monday.csv", drop / "monday-again.csv")
    second = run("csv")

    assert (second.status, second.items_fetched) == ("success", 12)
    assert (second.items_inserted, second.items_updated, second.items_unchanged) == (0, 0, 12)
    assert RawBody.objects.count() == bodies == 3
    assert sum(RawBody.objects.values_list("size", flat=True)) == body_bytes
    again = RawRecord.objects.filter(run=second)
    assert sorted(again.values_list("page_ref", flat=True)) == [
        "monday-again.csv rows 1-4",
        "monday-again.csv rows 5-8",
        "monday-again.csv rows 9-12",
    ]
    assert [r.body_text for r in again.order_by("pk")] == texts  # the first file's bodies
    # Each page replays as its own file's rows.
    replay = runs_replay(source_name="csv", run_ids=[second.id])
    assert (replay.items_fetched, replay.items_unchanged) == (12, 12)
    assert csv_quotes() == quotes


def test_a_copy_read_halfway_resumes_from_its_checkpoint_and_shares_bodies(drop):
    (drop / "a.csv").write_text(prices(range(6)))
    run("csv")
    shutil.copy(drop / "a.csv", drop / "b.csv")

    broken = run("csv", faults="csv:load:1@page2")

    assert broken.status == "failed"
    assert Checkpoint.objects.get(source="csv").cursor["files"]["b.csv"]["row"] == 4
    resumed = run("csv")
    assert (resumed.status, resumed.items_fetched, resumed.items_unchanged) == ("success", 8, 8)
    assert Checkpoint.objects.get(source="csv").cursor["files"]["b.csv"]["row"] == 12
    assert RawBody.objects.count() == 3
    assert RawRecord.objects.filter(source="csv").count() == 6
    assert len(csv_quotes()) == 12
