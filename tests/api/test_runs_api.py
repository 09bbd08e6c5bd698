"""GET /stats, /runs, /runs/{id}, POST /compare-runs: token required."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crypto.versions import data_version_advance
from kasparro.core.apikeys.services import apikey_create, apikey_revoke
from runs.models import Run
from tests.factories import finished_run

pytestmark = pytest.mark.django_db


def make_run(
    source="coingecko", status="success", seconds=10.0, fetched=100, ago_hours=1.0, **fields
) -> Run:
    return finished_run(
        source=source, status=status, seconds=seconds, items=fetched, hours_ago=ago_hours, **fields
    )


@pytest.mark.parametrize("path", ["/stats", "/runs"])
def test_missing_or_bad_token_is_a_401_json(client, path):
    for headers in (
        {},
        {"HTTP_AUTHORIZATION": "Token nope"},
        {"HTTP_X_API_KEY": "nope"},
        {"HTTP_AUTHORIZATION": "Basic abc"},
        {"HTTP_AUTHORIZATION": "Token a b"},
    ):
        response = client.get(path, **headers)
        assert response.status_code == 401, headers
        assert response["Content-Type"] == "application/json"
        assert response["WWW-Authenticate"] == "Token"
        assert response.json()["error"]["status"] == 401


def test_both_header_styles_work_and_revocation_is_immediate(client):
    _, raw = apikey_create(name="ops")
    assert client.get("/stats", HTTP_AUTHORIZATION=f"Token {raw}").status_code == 200
    assert client.get("/stats", HTTP_X_API_KEY=raw).status_code == 200
    apikey_revoke(name="ops")
    assert client.get("/stats", HTTP_X_API_KEY=raw).status_code == 401


@pytest.mark.parametrize("path", ["/stats", "/runs", f"/runs/{uuid.uuid4()}"])
def test_conflicting_credentials_are_a_401_naming_the_conflict(client, path):
    _, raw = apikey_create(name="ops")
    _, other = apikey_create(name="other")
    for authorization in (f"Token {other}", "Token nope", "Basic abc", ""):
        response = client.get(path, HTTP_X_API_KEY=raw, HTTP_AUTHORIZATION=authorization)
        assert response.status_code == 401, authorization
        error = response.json()["error"]
        assert error["code"] == "conflicting_credentials", authorization
        assert error["message"].startswith("Conflicting credentials: the Authorization header")
    # The same key in both headers is one credential, not a conflict.
    same = client.get(path, HTTP_X_API_KEY=raw, HTTP_AUTHORIZATION=f"Token {raw}")
    assert same.status_code in (200, 404)
    assert client.get(path, HTTP_X_API_KEY=raw).status_code in (200, 404)


def test_stats_per_source_with_constant_queries(client, auth):
    make_run(seconds=10)
    make_run(seconds=20, ago_hours=2)
    make_run(status="failed", seconds=1, fetched=0, ago_hours=0.5)
    make_run(source="csv", status="partial", seconds=3, items_quarantined=4)
    client.get("/stats", **auth)
    data_version_advance()  # what is measured is an answer computed, not the second's cached one
    with CaptureQueriesContext(connection) as few:
        body = client.get("/stats", **auth).json()
    for i in range(30):
        make_run(source="rss", seconds=i + 1, ago_hours=i / 10)
    data_version_advance()
    with CaptureQueriesContext(connection) as many:
        assert client.get("/stats", **auth).status_code == 200
    assert len(few) == len(many)

    cg = body["sources"]["coingecko"]
    assert cg["runs"]["success"] == 2 and cg["runs"]["failed"] == 1
    assert cg["mean_duration_seconds"] == 15.0
    assert cg["p95_duration_seconds"] == 20.0
    assert cg["last_failure_at"] is not None
    assert body["sources"]["csv"]["items_quarantined"] == 4
    assert body["sources"]["rss"]["last_success_at"] is None
    assert len(body["recent_runs"]) == 4


def test_runs_list_filters_and_pages(client, auth):
    make_run(ago_hours=3)
    failed = make_run(status="failed", ago_hours=2)
    make_run(source="csv", ago_hours=1)
    everything = client.get("/runs", **auth).json()
    assert everything["pagination"]["total_items"] == 3
    assert [r["source"] for r in everything["data"]] == ["csv", "coingecko", "coingecko"]
    only_failed = client.get("/runs", {"status": "failed"}, **auth).json()["data"]
    assert [r["id"] for r in only_failed] == [str(failed.id)]
    since = (timezone.now() - dt.timedelta(hours=2.5)).isoformat()
    recent = client.get("/runs", {"since": since, "source": "coingecko"}, **auth).json()
    assert recent["pagination"]["total_items"] == 1
    for bad in ({"status": "meh"}, {"source": "nasdaq"}, {"since": "2 days ago"}):
        response = client.get("/runs", bad, **auth)
        assert response.status_code == 400
        assert next(iter(bad)) in response.json()["error"]["details"]


def test_run_detail_shows_checkpoints_and_is_404_for_unknown_or_malformed_ids(client, auth):
    run = make_run(checkpoint_before={"next_page": 2}, checkpoint_after={"next_page": 1})
    body = client.get(f"/runs/{run.id}", **auth).json()
    assert body["checkpoint_before"] == {"next_page": 2}
    assert client.get(f"/runs/{uuid.uuid4()}", **auth).status_code == 404
    assert client.get("/runs/not-a-uuid", **auth).status_code == 404


def test_compare_runs_applies_the_original_rules(client, auth):
    baseline = make_run(seconds=10, fetched=100)
    slower = make_run(seconds=25, fetched=40)
    body = client.post(
        "/compare-runs",
        {"run_id_1": str(baseline.id), "run_id_2": str(slower.id)},
        content_type="application/json",
        **auth,
    ).json()
    assert {f["rule"] for f in body["findings"]} == {"record_count_changed", "duration_increased"}

    failed = make_run(status="failed", seconds=0.1, fetched=0, error_message="boom")
    rules = {
        f["rule"]: f["severity"]
        for f in client.post(
            "/compare-runs",
            {"run_id_1": str(baseline.id), "run_id_2": str(failed.id)},
            content_type="application/json",
            **auth,
        ).json()["findings"]
    }
    assert rules == {
        "record_count_changed": "warning",
        "suspiciously_fast": "warning",
        "success_to_failure": "critical",
    }

    empty = make_run(seconds=9, fetched=0)
    rules = {
        f["rule"]
        for f in client.post(
            "/compare-runs",
            {"run_id_1": str(baseline.id), "run_id_2": str(empty.id)},
            content_type="application/json",
            **auth,
        ).json()["findings"]
    }
    assert "success_without_records" in rules

    steady = make_run(seconds=11, fetched=110)
    same = client.post(
        "/compare-runs",
        {"run_id_1": str(baseline.id), "run_id_2": str(steady.id)},
        content_type="application/json",
        **auth,
    ).json()
    assert same["findings"] == []


def test_compare_runs_validates_its_body(client, auth):
    run = make_run()
    cases = [
        ({"run_id_1": "abc", "run_id_2": str(run.id)}, 400, "run_id_1"),
        ({"run_id_1": str(run.id)}, 400, "run_id_2"),
    ]
    for body, status, field in cases:
        response = client.post("/compare-runs", body, content_type="application/json", **auth)
        assert response.status_code == status
        assert field in response.json()["error"]["details"]
    missing = client.post(
        "/compare-runs",
        {"run_id_1": str(run.id), "run_id_2": str(uuid.uuid4())},
        content_type="application/json",
        **auth,
    )
    assert missing.status_code == 404
    garbage = client.post("/compare-runs", "{not json", content_type="application/json", **auth)
    assert garbage.status_code == 400
    assert garbage.json()["error"]["status"] == 400
    assert client.post("/compare-runs", {}, content_type="application/json").status_code == 401
