"""Outages of the services the project leans on, with PRIVATE instances the tests may break:

- PostgreSQL restarted in the middle of a run: no half page is ever committed, the checkpoint
  agrees with the rows, the run is recorded as finished (not left `running`), and the next run
  resumes and completes the data of an unbroken run.
- Redis killed: reads keep being served (throttles fail open), /health degrades and names the
  broker, and the `etl` CLI still ingests (the rate limiter falls back to in-process).

The shared PostgreSQL and Redis of the suite are never touched by the outages.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import subprocess
import threading
import time
from decimal import Decimal

import pytest

from tests.conftest import coingecko_pages
from tests.services import PrivatePostgres, private_postgres, private_redis, stop_process
from tests.support import PYTHON, ROOT, manage, process_env

PER_PAGE = 25
DB_NAME = "kasparro_outage"


# --- helpers ------------------------------------------------------------------------------------


def fixture_items() -> list[dict]:
    return [item for page in coingecko_pages() for item in page]


def expected_quotes(items: list[dict]) -> set[tuple[str, dt.datetime, Decimal]]:
    """(slug, observed_at, price) of every fixture item, computed without the project's code."""
    return {
        (
            item["id"],
            dt.datetime.fromisoformat(item["last_updated"]),
            Decimal(repr(item["current_price"])),
        )
        for item in items
    }


# --- PostgreSQL restarted mid-run ---------------------------------------------------------------


def break_postgres(pg: PrivatePostgres, outage: str, release_page_3: threading.Event) -> None:
    """Break the database while the run waits for page 3, then let page 3 through.

    - `between-pages`: a fast restart; page 3 then meets a connection the restart killed.
    - `mid-page`: page 3's transaction is held on a row lock of the checkpoint (taken after its
      quotes are written, before the checkpoint moves) and the restart kills it there.
    - `down-during-commit`: the server is stopped, page 3's transaction fails while it is
      down, and it comes back a second later: the failure must still be recorded.
    """
    if outage == "between-pages":
        try:
            pg.restart()
        finally:
            release_page_3.set()
    elif outage == "mid-page":
        blocker = pg.connect(DB_NAME, autocommit=False)
        try:
            blocker.execute("SELECT 1 FROM etl_checkpoint WHERE source = 'coingecko' FOR UPDATE")
            release_page_3.set()
            deadline = time.monotonic() + 20
            with pg.connect(DB_NAME) as probe:
                while not probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query ILIKE '%etl_checkpoint%'"
                ).fetchone()[0]:
                    assert time.monotonic() < deadline, "page 3 never reached its checkpoint"
                    time.sleep(0.05)
                # ...and its transaction has written quotes: they must vanish with it.
                assert probe.execute(
                    "SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
                    "WHERE a.wait_event_type = 'Lock' AND a.query ILIKE '%etl_checkpoint%' "
                    "AND l.granted AND l.relation = 'crypto_quote'::regclass"
                ).fetchone()[0]
            pg.restart()
        finally:
            release_page_3.set()
            with contextlib.suppress(Exception):
                blocker.close()
    else:
        try:
            pg.stop()
        finally:
            release_page_3.set()
        time.sleep(1.0)  # page 3 is committed (and fails) while the server is down
        pg.start()


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["between-pages", "mid-page", "down-during-commit"])
def test_postgres_restart_mid_run_costs_no_failed_run(coingecko, tmp_path, outage):
    """PostgreSQL goes away while a 4-page run waits for page 3 (see `break_postgres`), with
    the shipped defaults: the page that met the outage rolls back whole, is retried from the
    checkpoint on a new connection, and the same run completes the data of an unbroken run."""
    items = fixture_items()
    assert len(items) == 4 * PER_PAGE
    coingecko.pages = [items[i : i + PER_PAGE] for i in range(0, len(items), PER_PAGE)]

    # Page 3 is held back until the outage has begun (an event rather than a fixed sleep, which
    # could race the restart): the run waits between two page transactions (no read-ahead).
    page3_requested, release_page_3 = threading.Event(), threading.Event()

    def hold_page_3(page: int):
        if page == 3 and not page3_requested.is_set():
            page3_requested.set()
            release_page_3.wait(timeout=20)
        return None  # then served normally

    coingecko.fail = hold_page_3

    with private_postgres() as pg:
        with pg.connect() as db:
            db.execute(f"CREATE DATABASE {DB_NAME}")
        env = process_env(
            DATABASE_URL=pg.url(DB_NAME),
            KASPARRO_TESTING="1",
            COINGECKO_BASE_URL=coingecko.base_url,
            COINGECKO_API_KEY="test-demo-key-123",
            COINGECKO_PAGES="4",
            COINGECKO_PER_PAGE=str(PER_PAGE),
            COINGECKO_RATE_LIMIT="0",
            ETL_HTTP_MAX_RETRIES="1",
            ETL_HTTP_BACKOFF_BASE="0.01",
            ETL_HTTP_BACKOFF_CAP="0.1",
            ETL_HTTP_READ_TIMEOUT="30",
            ETL_READ_AHEAD_PAGES="0",
            ETL_FAULTS="",
        )
        migrated = manage("migrate", "--no-input", env=env)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr

        out, err = tmp_path / "run1.out", tmp_path / "run1.err"
        with out.open("w") as stdout, err.open("w") as stderr:
            run = subprocess.Popen(
                [PYTHON, "manage.py", "etl", "run", "--source", "coingecko", "--no-progress"],
                cwd=ROOT,
                env=env,
                stdout=stdout,
                stderr=stderr,
                text=True,
            )
        try:
            deadline = time.monotonic() + 30
            while not page3_requested.wait(timeout=0.2):
                assert run.poll() is None, f"the run ended early:\n{err.read_text()}"
                assert time.monotonic() < deadline, "the run never asked for page 3"
            break_postgres(pg, outage, release_page_3)
            returncode = run.wait(timeout=40)
        finally:
            release_page_3.set()
            stop_process(run)
        log = f"stdout:\n{out.read_text()}\nstderr:\n{err.read_text()[-5000:]}"
        assert returncode == 0, log
        assert "coingecko: success" in out.read_text(), log
        if outage != "between-pages":  # page 3's transaction itself met the outage
            assert "database unavailable; retrying" in log, log

        with pg.connect(DB_NAME) as db:
            rows = db.execute(
                "SELECT a.slug, q.observed_at, q.price_usd FROM crypto_quote q "
                "JOIN crypto_asset a ON a.id = q.asset_id WHERE q.source = 'coingecko'"
            ).fetchall()
            latest = db.execute("SELECT count(*) FROM crypto_latestquote").fetchone()[0]
            raw_pages = db.execute("SELECT count(*) FROM etl_rawrecord").fetchone()[0]
            (cursor,) = db.execute(
                "SELECT cursor FROM etl_checkpoint WHERE source = 'coingecko'"
            ).fetchone()
            runs = db.execute("SELECT status, pages, items_inserted FROM runs_run").fetchall()
            leases = db.execute(
                "SELECT count(*) FROM etl_sourcelease WHERE holder IS NOT NULL"
            ).fetchone()[0]

        assert runs == [("success", 4, 100)], runs
        assert len(rows) == 100, "duplicates or missing quotes"
        assert len({(slug, at) for slug, at, _ in rows}) == 100, "duplicate quotes"
        assert {(slug, at, price) for slug, at, price in rows} == expected_quotes(items)
        assert latest == 100 and raw_pages == 4, (latest, raw_pages)
        cursor = json.loads(cursor) if isinstance(cursor, str) else cursor
        assert cursor == {"next_page": 1}
        assert leases == 0, "a lease was left held"


# --- Redis down ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_redis_down_data_still_answers_health_degrades_and_cli_still_runs(
    coingecko, settings, client
):
    import redis

    from crypto.models import Quote
    from etl.pipeline.run import ingest_run
    from runs.models import Run

    original_caches = settings.CACHES
    with private_redis() as server, contextlib.ExitStack() as restore:
        # The suite's teardown clears the cache it knows: give it back its own first.
        restore.callback(setattr, settings, "CACHES", original_caches)
        url = server.url
        settings.REDIS_URL = url
        settings.CELERY_BROKER_URL = url
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": "outage",
                "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
            }
        }

        run = ingest_run(source_name="coingecko", trigger="cli")
        assert run.status == "success", run.error_message
        assert Quote.objects.count() == 100

        # Redis up: reads served, throttled through the private Redis; the broker is healthy.
        response = client.get("/data", {"source": "coingecko"})
        assert response.status_code == 200
        assert response.json()["pagination"]["total_items"] == 100
        private = redis.Redis.from_url(url)
        assert private.keys("outage:*"), "the throttles did not use the private Redis"
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["broker_connected"] is True
        private.close()

        # Redis down.
        server.stop()
        stopped = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()

        started = time.monotonic()
        response = client.get("/data", {"source": "coingecko", "symbol": "btc"})
        assert response.status_code == 200, response.content
        data = response.json()["data"]
        assert [row["slug"] for row in data] == ["bitcoin"]
        assert data[0]["current_price"] == 87645.0
        assert client.get("/data").json()["pagination"]["total_items"] >= 100

        # /health holds its component checks for COMPONENTS_SECONDS (as shipped): the broker's
        # loss shows once they have expired.
        from runs.health import COMPONENTS_SECONDS

        time.sleep(max(0.0, COMPONENTS_SECONDS - (time.monotonic() - stopped)) + 0.05)
        health = client.get("/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "degraded"
        assert body["database_connected"] is True
        assert body["broker_connected"] is False
        assert any("broker" in reason for reason in body["reasons"]), body["reasons"]
        assert time.monotonic() - started < 10, "reads waited on the dead Redis"

        # The CLI still ingests: the rate limiter (a real limit, so it asks Redis) falls back
        # to in-process.
        env = process_env(
            REDIS_URL=url,
            CELERY_BROKER_URL=url,
            COINGECKO_BASE_URL=coingecko.base_url,
            COINGECKO_API_KEY="test-demo-key-123",
            COINGECKO_PAGES="2",
            COINGECKO_PER_PAGE="50",
            COINGECKO_RATE_LIMIT="6000",
            ETL_HTTP_MAX_RETRIES="1",
            ETL_FAULTS="",
        )
        done = manage("etl", "run", "--source", "coingecko", "--no-progress", env=env, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "coingecko: success" in done.stdout
        assert "Redis unavailable, limiting in-process" in done.stderr
        runs = list(Run.objects.filter(source="coingecko").values_list("status", flat=True))
        assert runs == ["success", "success"]
        assert Quote.objects.count() == 100  # the same upstream data: nothing new, no duplicate
