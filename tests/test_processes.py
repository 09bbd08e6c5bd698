"""Real processes: the `etl` CLI, a Celery worker, and the test suite's own isolation."""

from __future__ import annotations

import subprocess
import time
import urllib.request
import uuid

import pytest
from django.db import connection

from crypto.models import Quote
from runs.models import Run
from tests.support import PYTHON, ROOT, celery_worker, database_url, gunicorn, manage, process_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_etl_run_cli_ingests_and_exits_zero(coingecko):
    env = process_env(
        COINGECKO_BASE_URL=coingecko.base_url,
        COINGECKO_PAGES="2",
        COINGECKO_PER_PAGE="50",
        COINGECKO_RATE_LIMIT="0",
    )
    done = manage("etl", "run", "--source", "coingecko", env=env)
    assert done.returncode == 0, done.stderr
    assert "coingecko: success" in done.stdout
    assert "100 inserted" in done.stdout
    assert Quote.objects.count() == 100
    assert Run.objects.get().trigger == "cli"

    status = manage("etl", "status", env=env)
    assert status.returncode == 0
    assert "coingecko" in status.stdout and "last run   : success" in status.stdout


def test_etl_run_cli_exits_non_zero_when_a_run_fails():
    env = process_env(COINGECKO_BASE_URL="http://127.0.0.1:9/api/v3", ETL_HTTP_MAX_RETRIES="0")
    done = manage("etl", "run", "--source", "coingecko", "--no-progress", env=env)
    assert done.returncode == 1
    assert "coingecko: failed" in done.stdout
    assert "failed: coingecko" in done.stderr
    assert Run.objects.get().status == "failed"


def test_etl_run_rejects_unknown_source():
    done = manage("etl", "run", "--source", "nasdaq", env=process_env())
    assert done.returncode != 0
    assert "unknown source 'nasdaq'" in done.stderr


def test_celery_task_runs_through_a_real_worker(coingecko):
    """The `etl.ingest` task, sent through the broker (Redis when REDIS_URL is set) and run by
    a separate worker process, records a run and its data."""
    from etl.tasks import ingest

    env = process_env(
        COINGECKO_BASE_URL=coingecko.base_url,
        COINGECKO_PAGES="2",
        COINGECKO_PER_PAGE="50",
        COINGECKO_RATE_LIMIT="0",
    )
    with celery_worker(env) as worker:
        ingest.apply_async(args=["coingecko"], kwargs={"trigger": "manual"}, queue=worker.queue)
        deadline = time.monotonic() + 90
        run = None
        while time.monotonic() < deadline:
            run = Run.objects.filter(source="coingecko").exclude(status="running").first()
            if run:
                break
            assert worker.process.poll() is None, worker.log()
            time.sleep(0.3)
    assert run is not None, "the worker never finished the run"
    assert run.status == "success", run.error_message
    assert run.trigger == "manual"
    assert run.task_id
    assert Quote.objects.count() == 100


def test_suite_never_touches_the_configured_database(tmp_path):
    """Failure mode 10: the old suite dropped the tables of the development database.

    Run part of our suite in a child pytest pointed at a 'development' database holding data;
    afterwards the data is still there, because pytest-django works on its own test database.
    """
    marker = f"precious-{uuid.uuid4().hex[:6]}"
    if connection.vendor == "sqlite":
        dev_url = f"sqlite:///{tmp_path / 'dev.sqlite3'}"
        import sqlite3

        def query(sql: str, *params):
            with sqlite3.connect(tmp_path / "dev.sqlite3") as db:
                return db.execute(sql, params).fetchall()
    else:
        import psycopg

        admin_url = database_url("postgres")
        dev_name = f"kasparro_guard_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin_url, autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{dev_name}"')
        dev_url = database_url(dev_name)

        def query(sql: str, *params):
            with psycopg.connect(dev_url, autocommit=True) as db:
                cur = db.execute(sql.replace("?", "%s"), params)
                return cur.fetchall() if cur.description else []

    try:
        query("CREATE TABLE crypto_quote (note text)")
        query("INSERT INTO crypto_quote (note) VALUES (?)", marker)
        child = subprocess.run(
            [
                PYTHON,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/etl/test_ingest.py::test_zero_is_stored_as_zero",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=process_env(DATABASE_URL=dev_url, KASPARRO_STATE_DIR=str(tmp_path / "state")),
        )
        assert child.returncode == 0, child.stdout + child.stderr
        assert "1 passed" in child.stdout
        assert query("SELECT note FROM crypto_quote") == [(marker,)]
    finally:
        if connection.vendor != "sqlite":
            with psycopg.connect(admin_url, autocommit=True) as db:
                db.execute(f'DROP DATABASE IF EXISTS "{dev_name}" WITH (FORCE)')


def test_gunicorn_refuses_a_port_another_server_listens_on():
    """Workers listen with SO_REUSEPORT (deploy/gunicorn.conf.py), which would let a second
    server share the port silently: it refuses to start instead, and the first serves on."""
    env = process_env()
    with gunicorn(env) as base:
        port = base.rsplit(":", 1)[1]
        second = subprocess.run(
            [PYTHON, "-m", "gunicorn", "kasparro.wsgi:application", "-c",
             "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            cwd=ROOT, env={"PORT": port, **env}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode != 0
        assert f"cannot listen on 127.0.0.1:{port}: is in use by another server" in second.stderr
        assert urllib.request.urlopen(f"{base}/health", timeout=5).status == 200  # noqa: S310
