"""The run rollups: kept right by every way a run's status changes, equal to an aggregate of
the runs themselves, and what /health, /stats and /metrics read, at a cost that does not grow
with the run history."""

from __future__ import annotations

import datetime as dt
import importlib
import random

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crypto.versions import data_version_advance
from kasparro.core import metrics
from kasparro.core.apikeys.services import apikey_create
from runs.models import Run, RunTally, SourceRollup
from runs.services import run_finish, run_page_committed, run_skip, run_start, runs_fail_running
from tests.factories import RunFactory
from tests.test_metrics import sample

pytestmark = pytest.mark.django_db

TALLY_FIELDS = [
    f.name for f in RunTally._meta.get_fields() if f.name not in ("id", "source", "status")
]


def tallies() -> dict[tuple[str, str], dict]:
    return {
        (t["source"], t["status"]): {k: t[k] for k in TALLY_FIELDS}
        for t in RunTally.objects.values()
        if t["runs"]
    }


def test_a_run_through_the_services_is_counted_once_where_it_ends():
    run = run_start(source="csv", trigger="cli")
    assert RunTally.objects.get(source="csv", status="running").runs == 1
    assert SourceRollup.objects.get(source="csv").last_run_id == run.id

    run_page_committed(run_id=run.id, cursor=None, items_fetched=7, items_inserted=5)
    finished = run_finish(run_id=run.id, status=Run.Status.SUCCESS)
    run_finish(run_id=run.id, status=Run.Status.SUCCESS)  # told twice: counted once

    assert RunTally.objects.get(source="csv", status="running").runs == 0
    success = RunTally.objects.get(source="csv", status="success")
    assert (success.runs, success.items_fetched, success.items_inserted) == (1, 7, 5)
    assert success.le_1 == 1 and success.cumulative_buckets()[-1] == (float("inf"), 1)
    rollup = SourceRollup.objects.get(source="csv")
    assert rollup.last_success_at == rollup.last_usable_at == finished.finished_at
    assert rollup.last_failure_at is None

    # Corrected a minute later: moved with what it was counted as (a run of under a second),
    # not with its new length, and not added.
    minute = dt.timedelta(minutes=1)
    Run.objects.filter(pk=run.id).update(
        started_at=finished.started_at - minute, finished_at=finished.finished_at - minute
    )
    run_finish(run_id=run.id, status=Run.Status.FAILED)
    success = RunTally.objects.get(source="csv", status="success")
    assert (success.runs, success.items_fetched, success.le_1, success.le_60) == (0, 0, 0, 0)
    assert success.duration_seconds == pytest.approx(0, abs=1e-6)
    failed = RunTally.objects.get(source="csv", status="failed")
    assert (failed.runs, failed.items_fetched, failed.le_120) == (1, 7, 1)


def test_abandoned_runs_and_skips_are_counted():
    dead = run_start(source="rss", trigger="beat")
    assert runs_fail_running(source="rss", error_class="x.Dead", message="died") == dead.id
    run_skip(source="rss", trigger="beat", reason="busy")
    assert tallies()[("rss", "failed")]["runs"] == 1
    assert tallies()[("rss", "skipped")]["runs"] == 1
    assert ("rss", "running") not in tallies()
    rollup = SourceRollup.objects.get(source="rss")
    assert rollup.last_run_id == dead.id  # a skip is not the source's last run
    assert rollup.last_failure_at is not None and rollup.last_usable_at is None


def test_the_rollups_equal_an_aggregate_of_the_runs_they_count():
    """Hundreds of runs of every source, status and length, in random order: the rollups
    kept as they were recorded equal the backfill migration's pass over the table."""
    rng = random.Random(7)
    now = timezone.now()
    for _ in range(300):
        started = now - dt.timedelta(minutes=rng.randrange(100_000))
        status = rng.choice(Run.Status.values)
        RunFactory(
            source=rng.choice(["coingecko", "rss", "csv"]),
            status=status,
            started_at=started,
            finished_at=None
            if status == "running"
            else started + dt.timedelta(seconds=rng.choice([0.2, 3, 59, 61, 700, 5000])),
            items_fetched=rng.randrange(1000),
            items_quarantined=rng.randrange(5),
            drift_findings=rng.randrange(3),
        )
    kept = tallies()
    kept_rollups = list(SourceRollup.objects.order_by("source").values())

    RunTally.objects.all().delete()
    SourceRollup.objects.all().delete()
    importlib.import_module("runs.migrations.0007_backfill_rollups").backfill(apps, None)

    rebuilt = tallies()
    assert rebuilt.keys() == kept.keys()
    for key, values in kept.items():
        assert values == pytest.approx(rebuilt[key]), key
    assert list(SourceRollup.objects.order_by("source").values()) == kept_rollups


def test_metrics_keep_their_counts_when_old_runs_are_deleted(client):
    for hours in (1, 2, 24 * 400):
        started = timezone.now() - dt.timedelta(hours=hours)
        RunFactory(source="csv", started_at=started, items_fetched=10)
    before = client.get("/metrics").content.decode()
    Run.objects.filter(started_at__lt=timezone.now() - dt.timedelta(days=30)).delete()
    metrics._scrape = None  # gathered anew, not the second's held text
    after = client.get("/metrics").content.decode()
    for text in (before, after):
        assert sample(text, "etl_runs_total", source="csv", status="success") == 3
        assert sample(text, "etl_records_processed_total", source="csv") == 30
        assert sample(text, "etl_duration_seconds_count", source="csv") == 3


def queries(client, path: str, **headers) -> int:
    """Queries of one answer, not served from what an earlier one held (/health's component
    checks; the response cache's bodies)."""
    data_version_advance()
    metrics._scrape = None
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, **headers)
    assert response.status_code == 200, response.content[:300]
    return len(captured)


def history(runs: int) -> None:
    """`runs` hourly runs of the three sources, newest now."""
    now = timezone.now()
    Run.objects.bulk_create(
        Run(
            source=("coingecko", "rss", "csv")[i % 3],
            status="success" if i % 7 else "failed",
            trigger="beat",
            started_at=now - dt.timedelta(hours=i // 3),
            finished_at=now - dt.timedelta(hours=i // 3) + dt.timedelta(seconds=20),
            items_fetched=100,
        )
        for i in range(runs)
    )
    importlib.import_module("runs.migrations.0007_backfill_rollups").backfill(apps, None)


def test_health_stats_and_metrics_read_no_more_at_3000_runs_than_at_30(client):
    key = {"HTTP_X_API_KEY": apikey_create(name="tests")[1]}
    client.get("/stats", **key)  # the key's first use records it (a write, once a minute)
    history(30)
    few = [
        queries(client, "/health"),
        queries(client, "/stats", **key),
        queries(client, "/metrics"),
    ]
    Run.objects.all().delete()
    RunTally.objects.all().delete()
    SourceRollup.objects.all().delete()
    history(3000)
    many = [
        queries(client, "/health"),
        queries(client, "/stats", **key),
        queries(client, "/metrics"),
    ]
    assert many == few
    # ...and /stats's window holds only its own runs (7 days by default).
    stats = client.get("/stats", **key).json()
    assert sum(stats["sources"]["csv"]["runs"].values()) == 7 * 24
