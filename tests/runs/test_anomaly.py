"""Anomaly scoring and run comparison, from constructed runs, including cases that must not
fire."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from etl.pipeline.run import ingest_run
from kasparro.core.apikeys.services import apikey_create
from runs.anomaly import run_anomalies, run_score_store, run_scores
from runs.comparison import asset_changes, asset_findings
from runs.models import Run
from tests.factories import finished_run

pytestmark = pytest.mark.django_db

T0 = timezone.now() - dt.timedelta(days=2)


def make(
    hours_ago: float,
    *,
    items=100,
    seconds=10.0,
    quarantined=0,
    drift=0,
    lag=600.0,
    status="success",
    source="coingecko",
    prices=None,
) -> Run:
    return finished_run(
        hours_ago=hours_ago,
        items=items,
        seconds=seconds,
        status=status,
        source=source,
        items_quarantined=quarantined,
        drift_findings=drift,
        freshness_lag_seconds=lag,
        asset_prices=prices,
    )


@pytest.fixture
def history():
    """Twelve ordinary hourly runs with a little natural variation."""
    return [
        make(20 - i, items=100 + (i % 3) - 1, seconds=10 + (i % 4) * 0.5, lag=600 + (i % 5) * 20)
        for i in range(12)
    ]


def rules(findings) -> dict[str, str]:
    return {f.rule: f.severity for f in findings}


def test_an_ordinary_run_raises_nothing(history):
    run = make(1, items=101, seconds=11, lag=640)
    assert run_anomalies(run, history) == []
    scores = run_scores(run, history)
    assert set(scores) == {"items", "duration", "quarantine_rate", "drift", "freshness_lag"}
    assert abs(scores["items"]) < 3 and scores["drift"] is None  # constant history: no z


@pytest.mark.parametrize(
    ("fields", "rule", "severity"),
    [
        ({"items": 10}, "anomalous_items", "critical"),
        ({"items": 97}, "anomalous_items", "warning"),
        ({"seconds": 60}, "anomalous_duration", "critical"),
        ({"quarantined": 40}, "anomalous_quarantine_rate", "warning"),
        ({"drift": 3}, "anomalous_drift", "warning"),
        ({"lag": 7200}, "anomalous_freshness_lag", "critical"),
    ],
)
def test_each_metric_fires_when_far_from_its_history(history, fields, rule, severity):
    found = rules(run_anomalies(make(1, **fields), history))
    assert found == {rule: severity}


@pytest.mark.parametrize("fields", [{"seconds": 1}, {"lag": 0}, {"quarantined": 0}])
def test_better_than_usual_is_not_an_anomaly(history, fields):
    assert run_anomalies(make(1, **fields), history) == []


def test_short_history_fires_nothing(history):
    assert run_anomalies(make(1, items=1, seconds=500), history[:4]) == []


def test_constant_history_uses_relative_change(history):
    steady = [make(30 + i, items=50, seconds=5, lag=100) for i in range(6)]
    assert run_anomalies(make(1, items=52, seconds=5, lag=100), steady) == []
    assert rules(run_anomalies(make(1, items=120, seconds=5, lag=100), steady)) == {
        "anomalous_items": "warning"
    }


def test_every_finished_run_is_scored_and_shown_by_the_api(coingecko, client):
    for i in range(8):
        make(10 - i, items=1000, seconds=2.0)
    run = ingest_run(source_name="coingecko", trigger="cli")  # 100 items: far below 1000
    run.refresh_from_db()
    assert {f["rule"] for f in run.findings} >= {"anomalous_items"}
    assert Decimal(run.asset_prices["bitcoin"]) == 87645
    assert run.freshness_lag_seconds > 0
    _, key = apikey_create(name="k")
    body = client.get(f"/runs/{run.id}", HTTP_X_API_KEY=key).json()
    assert any(f["rule"] == "anomalous_items" for f in body["findings"])
    assert body["assets_seen"] == 100


def test_skipped_runs_are_not_scored(history):
    skipped = make(1, items=0, status="skipped")
    assert run_score_store(run_id=skipped.id) == []


def test_asset_changes_between_runs():
    before = make(2, prices={"bitcoin": "100", "ethereum": "10", "dogecoin": "1", "sol": "5"})
    after = make(1, prices={"bitcoin": "105", "ethereum": "13", "dogecoin": "0.3", "ada": "1"})
    changes = asset_changes(baseline=before, candidate=after, threshold=0.10)
    assert changes["appeared"] == ["ada"] and changes["vanished"] == ["sol"]
    assert [(m["slug"], m["change_pct"]) for m in changes["price_moves"]] == [
        ("dogecoin", -70.0),
        ("ethereum", 30.0),
    ]
    found = [(f.rule, f.severity) for f in asset_findings(changes, threshold=0.10)]
    assert found == [
        ("assets_vanished", "warning"),
        ("assets_appeared", "info"),
        ("price_move", "critical"),
        ("price_move", "warning"),
    ]
    same = asset_changes(baseline=before, candidate=before)
    assert same == {"appeared": [], "vanished": [], "price_moves": []}


def test_compare_runs_api_reports_rules_assets_and_scores(client, history):
    baseline = make(2, prices={"bitcoin": "100"})
    candidate = make(1, items=20, prices={"bitcoin": "150", "ethereum": "1"})
    _, key = apikey_create(name="k")
    body = client.post(
        "/compare-runs",
        {"run_id_1": str(baseline.id), "run_id_2": str(candidate.id), "price_threshold_pct": 20},
        content_type="application/json",
        HTTP_X_API_KEY=key,
    ).json()
    assert {f["rule"] for f in body["findings"]} == {
        "record_count_changed",
        "assets_appeared",
        "price_move",
    }
    assert body["asset_changes"]["price_moves"][0]["change_pct"] == 50.0
    assert body["scores"]["run_2"]["items"] < -3
    assert body["anomalies"]["run_2"][0]["rule"] == "anomalous_items"
    assert body["anomalies"]["run_1"] == []
