"""Retention of runs (`etl prune`, the `etl.prune` beat task, ETL_RUN_RETENTION_DAYS): old runs
go in batches, their counts stay in the rollups, and what still needs a run keeps it."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from etl.models import DriftEvent
from etl.services.run_retention import runs_prune
from etl.tasks import prune
from kasparro.core import metrics
from runs.models import Run
from tests.factories import (
    DriftEventFactory,
    QuarantinedRecordFactory,
    RawRecordFactory,
    RunFactory,
)
from tests.test_metrics import sample

pytestmark = pytest.mark.django_db


def started(days: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


def history() -> dict[str, Run]:
    """Runs of every kind of need, 100 days old unless said, and one young run."""
    runs = {
        "old": RunFactory(source="csv", started_at=started(100)),
        "old_child": None,
        "young": RunFactory(source="csv", started_at=started(1)),
        "last_of_rss": RunFactory(source="rss", started_at=started(100)),
        "with_raw": RunFactory(source="coingecko", started_at=started(100)),
        "with_quarantine": RunFactory(source="coingecko", started_at=started(99)),
        "met_open_drift": RunFactory(source="coingecko", started_at=started(98)),
        "met_closed_drift": RunFactory(source="coingecko", started_at=started(97)),
        "running": RunFactory(
            source="coingecko", started_at=started(96), status="running", finished_at=None
        ),
        "last_of_coingecko": RunFactory(source="coingecko", started_at=started(2)),
    }
    runs["old_child"] = RunFactory(
        source="csv", started_at=started(90), trigger="retry", parent=runs["old"]
    )
    RawRecordFactory(run=runs["with_raw"], last_seen_at=started(1))
    QuarantinedRecordFactory(run=runs["with_quarantine"])
    DriftEventFactory(runs=[runs["met_open_drift"]])
    DriftEventFactory(
        runs=[runs["met_closed_drift"]], status=DriftEvent.Status.REJECTED, replay_run=None
    )
    return runs


def test_old_runs_go_and_what_still_needs_a_run_keeps_it(settings):
    runs = history()
    replays = set(Run.objects.filter(trigger="replay").values_list("pk", flat=True))
    report = runs_prune(days=30, batch_size=2)
    left = set(Run.objects.values_list("pk", flat=True))
    assert replays <= left  # the runs that replayed drift events stay
    left -= replays
    assert left == {
        runs[name].pk
        for name in (
            "young",
            "last_of_rss",
            "with_raw",
            "with_quarantine",
            "met_open_drift",
            "running",
            "last_of_coingecko",
        )
    }
    assert report.runs == 3 and report.batches == 2  # old, old_child, met_closed_drift
    assert report.before.rows - report.after.rows == 3


def test_the_default_keeps_every_run_and_the_task_prunes_with_the_setting(settings):
    history()
    count = Run.objects.count()
    assert settings.ETL_RUN_RETENTION_DAYS == 0  # the shipped default: keep
    assert prune()["runs"] == 0 and Run.objects.count() == count
    settings.ETL_RUN_RETENTION_DAYS = 30
    assert prune()["runs"] == 3 and Run.objects.count() == count - 3


def test_dry_run_deletes_nothing_and_says_what_the_prune_then_deletes():
    history()
    count = Run.objects.count()
    out = io.StringIO()
    call_command("etl", "prune", "--dry-run", "--run-days", "30", stdout=out)
    assert "would delete: 3 run(s)" in out.getvalue() and Run.objects.count() == count
    out = io.StringIO()
    call_command("etl", "prune", "--run-days", "30", "--batch-size", "1", stdout=out)
    text = out.getvalue()
    assert "deleted: 3 run(s) in 3 batch(es)" in text
    assert f"runs_run: {count} rows" in text and f"-> {count - 3} rows" in text


def test_counters_survive_the_prune(client):
    runs = history()
    before = client.get("/metrics").content.decode()
    runs_prune(days=30)
    metrics._scrape = None  # gathered anew, not the second's held text
    after = client.get("/metrics").content.decode()
    for text in (before, after):
        assert sample(text, "etl_runs_total", source="csv", status="success") == 3
        assert sample(text, "etl_duration_seconds_count", source="csv") == 3
    health = client.get("/health").json()["etl_status"]
    assert health["rss"]["last_run_at"] == runs["last_of_rss"].started_at.isoformat()
