"""/health for a load balancer: one query per answer, component checks held for
COMPONENTS_SECONDS (as shipped) and one data version, a database that is down a 503 at once."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs import health
from runs.services import run_finish, run_start
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_answer_costs_one_query_once_the_checks_are_held(client):
    client.get("/health")  # the checks are made and held
    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            assert client.get("/health").status_code == 200
    assert len(queries) == 5 and all("crypto_dataversion" in q["sql"] for q in queries)


def test_the_checks_are_held_for_the_shipped_seconds_and_then_made_again(client, monkeypatch):
    assert health.COMPONENTS_SECONDS == 2.0  # the shipped default, a second or two
    client.get("/health")
    made = []
    checks = health._check_components
    monkeypatch.setattr(health, "_check_components", lambda v: made.append(v) or checks(v))
    client.get("/health")
    assert made == []
    time.sleep(health.COMPONENTS_SECONDS + 0.05)
    client.get("/health")
    assert len(made) == 1


def test_a_run_finishing_shows_at_once_whatever_is_held(client):
    assert client.get("/health").json()["etl_status"]["csv"]["last_run_status"] is None
    run = run_start(source="csv", trigger="manual")
    assert client.get("/health").json()["etl_status"]["csv"]["last_run_status"] == "running"
    run_finish(run_id=run.pk, status="success")
    body = client.get("/health").json()
    assert body["etl_status"]["csv"]["last_run_status"] == "success"
    assert not body["etl_status"]["csv"]["stale"]


def test_a_database_that_is_down_is_a_503_at_once_whatever_is_held(client, monkeypatch):
    now = timezone.now()
    for source in ("coingecko", "rss", "csv"):
        RunFactory(source=source, trigger="beat", status="success", started_at=now, finished_at=now)
    assert client.get("/health").json()["status"] in ("healthy", "degraded")  # held now

    # The database's address made unreachable for new connections: the next answer's one query
    # fails, and the held checks are not used.
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "HOST", "127.0.0.1")
    monkeypatch.setitem(connection.settings_dict, "PORT", "1")
    if connection.vendor == "sqlite":
        monkeypatch.setitem(connection.settings_dict, "NAME", "/nonexistent/dir/db.sqlite3")
    down = client.get("/health")
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "unhealthy" and body["database_connected"] is False
    assert body["reasons"][0] == "database unreachable" and body["etl_status"] == {}
    monkeypatch.undo()
    connection.close()
    assert client.get("/health").status_code == 200


def test_a_connection_broken_since_its_last_use_is_replaced_not_reported_down(client):
    """Django's own check of a reused connection (CONN_HEALTH_CHECKS) is not made on top of
    the version's read, which is the check: a connection that broke (the database restarted)
    fails that read once and it is made again on a fresh connection."""
    assert client.get("/health").json()["database_connected"] is True
    connection.connection.close()  # behind Django's back, as a server restart leaves it
    answer = client.get("/health")
    assert answer.status_code == 200 and answer.json()["database_connected"] is True
    assert answer["Content-Type"] == "application/json" and answer["Allow"] == "GET, HEAD, OPTIONS"


def test_the_answer_is_the_one_drf_renders(client, monkeypatch):
    from runs.health import HealthApi

    fast = client.get("/health")
    monkeypatch.setattr(HealthApi, "dispatch", HealthApi.__mro__[1].dispatch)
    drf = client.get("/health")
    assert fast.status_code == drf.status_code
    drop = {"X-Request-ID", "Date", "Content-Length"}
    assert {k: v for k, v in fast.headers.items() if k not in drop} == {
        k: v for k, v in drf.headers.items() if k not in drop
    }
    first, second = fast.json(), drf.json()
    for body in (first, second):
        body.pop("timestamp"), body.pop("request_id")
    assert first == second
    assert client.post("/health").status_code == 405
