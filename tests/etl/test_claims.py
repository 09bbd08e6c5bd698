"""Crash-safe ownership of a source, with the shipped defaults (ETL_LEASE_SECONDS as shipped):
a heartbeat keeps a live run's claim, a dead run's claim is taken over in seconds, the reaper
fails dead runs and queues their recovery, and a killed process never leaves a source held.

Claims are seen by other connections only once committed: these tests are transactional.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from crypto.models import Quote
from etl.models import Checkpoint, SourceLease
from etl.pipeline.run import ingest_run
from etl.services.leases import SourceClaim, heartbeat_seconds
from etl.services.reaper import ERROR_CLASS, runs_reap
from runs.models import Run
from tests.support import PYTHON, ROOT, celery_eager, celery_worker, process_env

pytestmark = pytest.mark.django_db(transaction=True)


def quote_rows() -> list[tuple]:
    return sorted(
        Quote.objects.values_list("asset__slug", "source", "observed_at", "price_usd", "market_cap")
    )


def slow_pages(coingecko, settings, slow_page: int, seconds: float) -> threading.Event:
    """Four pages of 25 coins; page `slow_page` is served after `seconds`, or as soon as the
    returned event is set (the test server answers one request at a time)."""
    items = coingecko.pages[0] + coingecko.pages[1]
    coingecko.pages = [items[i : i + 25] for i in range(0, 100, 25)]
    settings.COINGECKO_PAGES, settings.COINGECKO_PER_PAGE = 4, 25
    release = threading.Event()

    def fail(page):
        if page == slow_page:
            release.wait(seconds)

    coingecko.fail = fail
    return release


def cli_env(coingecko, **extra) -> dict:
    return process_env(
        COINGECKO_BASE_URL=coingecko.base_url,
        COINGECKO_PAGES="4",
        COINGECKO_PER_PAGE="25",
        COINGECKO_RATE_LIMIT="0",
        ETL_READ_AHEAD_PAGES="0",
        **extra,
    )


def wait_for(condition, timeout: float, message: str, process=None):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{message}: the process exited ({process.returncode})")
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


def at_page_3() -> bool:
    return Checkpoint.objects.filter(source="coingecko", cursor={"next_page": 3}).exists()


def test_shipped_defaults_notice_death_within_a_minute():
    assert 0 < django_settings.ETL_LEASE_SECONDS <= 60
    assert heartbeat_seconds() <= 10
    assert heartbeat_seconds() * 3 < django_settings.ETL_LEASE_SECONDS


# --- SIGKILL, production defaults ---------------------------------------------------------------


@pytest.mark.slow
def test_cli_killed_mid_run_then_rerun_at_once_resumes_with_unbroken_rows(coingecko, settings):
    """`etl run` SIGKILLed after page 2: a rerun straight away is never `skipped` — it takes
    the dead run's claim over (at once on PostgreSQL, once the lease runs out on SQLite),
    fails the dead run as abandoned, links to it, resumes at page 3, and the rows equal those
    of an unbroken run."""
    release = slow_pages(coingecko, settings, slow_page=3, seconds=60)
    worker = subprocess.Popen(
        [PYTHON, "manage.py", "etl", "run", "--source", "coingecko", "--no-progress"],
        cwd=ROOT,
        env=cli_env(coingecko),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(at_page_3, 30, "the run never committed page 2", worker)
    worker.kill()  # SIGKILL: no cleanup at all
    worker.wait()
    release.set()
    killed = Run.objects.get()
    assert killed.status == "running" and Quote.objects.count() == 50
    coingecko.fail = lambda page: None

    started = time.monotonic()
    resumed = ingest_run(source_name="coingecko", trigger="cli")
    waited = time.monotonic() - started
    assert resumed.status == "success", resumed.error_message
    assert resumed.checkpoint_before == {"next_page": 3}
    assert resumed.items_inserted == 50
    assert resumed.parent_id == killed.id
    assert waited < django_settings.ETL_LEASE_SECONDS + 15
    killed.refresh_from_db()
    assert killed.status == "failed"
    assert killed.error_class == ERROR_CLASS == "etl.exceptions.RunAbandoned"
    assert "abandoned" in killed.error_message
    assert not Run.objects.filter(status__in=["skipped", "running"]).exists()
    assert SourceLease.objects.get(source="coingecko").holder is None

    broken = quote_rows()
    Quote.objects.all().delete()
    Checkpoint.objects.all().delete()
    ingest_run(source_name="coingecko", trigger="cli")
    assert broken == quote_rows()  # no duplicate, no loss


@pytest.mark.slow
def test_pool_process_killed_mid_run_is_redelivered_and_resumes(coingecko, settings):
    """The scenario of the issue, with the shipped defaults and the real broker: a prefork
    worker's pool process is SIGKILLed after page 2. Celery redelivers the task; the new attempt
    takes over (its predecessor is its own dead attempt), and the chain is failed (abandoned)
    -> success, with no `skipped`, within 2 minutes and with no one touching anything."""
    from etl.tasks import ingest

    release = slow_pages(coingecko, settings, slow_page=3, seconds=60)
    with celery_worker(cli_env(coingecko), concurrency=1) as worker:
        ingest.apply_async(args=["coingecko"], kwargs={"trigger": "manual"}, queue=worker.queue)
        wait_for(at_page_3, 60, "the worker never committed page 2", worker.process)
        killed = Run.objects.get(status="running")
        pid = int(killed.host.rsplit(":", 1)[1])
        assert pid != worker.process.pid, "the run must be in a pool process"
        os.kill(pid, signal.SIGKILL)
        crashed = time.monotonic()
        release.set()
        coingecko.fail = lambda page: None

        resumed = wait_for(
            lambda: Run.objects.filter(parent=killed, status="success").first(),
            120,
            "no successful run followed the killed one within 2 minutes",
            worker.process,
        )
        recovery = time.monotonic() - crashed
    killed.refresh_from_db()
    assert killed.status == "failed" and killed.error_class == ERROR_CLASS
    assert resumed.task_id == killed.task_id  # the redelivered task itself
    assert resumed.checkpoint_before == {"next_page": 3}
    assert resumed.items_inserted == 50
    assert list(Run.objects.order_by("started_at").values_list("status", flat=True)) == [
        "failed",
        "success",
    ]
    assert Quote.objects.count() == 100
    assert recovery < 120


@pytest.mark.slow
def test_whole_worker_killed_is_recovered_by_the_reaper(coingecko, settings):
    """Main process and pool SIGKILLed together: the broker would hold the task until its
    visibility timeout (2 h). The reaper (beat runs it every minute) fails the dead run and
    queues its recovery, which a new worker runs: failed (abandoned) -> success (retry)."""
    from etl.tasks import ingest, reap

    release = slow_pages(coingecko, settings, slow_page=3, seconds=60)
    env = cli_env(coingecko)
    with celery_worker(env, concurrency=1) as worker:
        ingest.apply_async(args=["coingecko"], kwargs={"trigger": "manual"}, queue=worker.queue)
        wait_for(at_page_3, 60, "the worker never committed page 2", worker.process)
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
    crashed = time.monotonic()
    release.set()
    coingecko.fail = lambda page: None
    killed = Run.objects.get()
    assert killed.status == "running"

    # A new worker; the reaper sent to it as beat would, and its recovery queued by it.
    with celery_worker(env, concurrency=1, queue=worker.queue) as again:
        reap.apply_async(queue=again.queue)
        resumed = wait_for(
            lambda: Run.objects.filter(parent=killed, status="success").first(),
            110,
            "the reaper's recovery never succeeded",
            again.process,
        )
    assert time.monotonic() - crashed < 120
    killed.refresh_from_db()
    assert killed.status == "failed" and killed.error_class == ERROR_CLASS
    assert resumed.trigger == "retry"
    assert resumed.checkpoint_before == {"next_page": 3}
    assert Quote.objects.count() == 100
    assert not Run.objects.filter(status="skipped").exists()


# --- Live runs keep their claim -----------------------------------------------------------------


@pytest.mark.slow
def test_a_live_run_slower_than_its_lease_keeps_its_claim(coingecko, settings):
    """Liveness does not depend on page progress: with a 1-second lease (the heartbeat beats
    every 0.5 s), a page that takes 4 s never loses the claim; a second start meanwhile is
    skipped, because the first run is alive. (The defaults are what the tests above use.)"""
    settings.ETL_LEASE_SECONDS = 1
    settings.ETL_READ_AHEAD_PAGES = 0
    slow_pages(coingecko, settings, slow_page=2, seconds=4)
    results = {}
    first = threading.Thread(
        target=lambda: results.setdefault(
            "first", ingest_run(source_name="coingecko", trigger="cli")
        )
    )
    first.start()
    try:
        wait_for(lambda: Run.objects.filter(status="running").exists(), 10, "no run started")
        time.sleep(2)  # longer than the lease: only the heartbeat keeps the claim alive
        second = ingest_run(source_name="coingecko", trigger="cli")
    finally:
        first.join(timeout=60)
    assert second.status == "skipped"
    assert results["first"].status == "success"
    assert Quote.objects.count() == 100


@pytest.mark.slow
def test_two_workers_started_together_one_runs_one_is_skipped(coingecko, settings):
    """The loser meets a live holder: skipped at once on PostgreSQL (the advisory lock is
    held), after watching the holder's heartbeat move on SQLite (a beat and a half)."""
    slow_pages(coingecko, settings, slow_page=2, seconds=2 + 2 * heartbeat_seconds())
    command = [PYTHON, "manage.py", "etl", "run", "--source", "coingecko", "--no-progress"]
    workers = [
        subprocess.Popen(
            command, cwd=ROOT, env=cli_env(coingecko), stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=60)[0] for w in workers]
    assert sorted(Run.objects.values_list("status", flat=True)) == ["skipped", "success"]
    assert sum("coingecko: skipped" in out for out in outputs) == 1
    assert Quote.objects.count() == 100


def test_a_run_whose_claim_was_taken_cannot_commit_another_page(coingecko, settings):
    """Fencing: if another run takes the claim over (as after a partition), the old run's next
    page transaction refuses to commit and the run fails with the reason."""
    settings.ETL_READ_AHEAD_PAGES = 0
    usurper = uuid.uuid4()

    def steal(page):
        if page == 3:  # in the test server's thread, on a connection of its own
            SourceLease.objects.filter(source="coingecko").update(holder=usurper)
            connection.close()

    slow_pages(coingecko, settings, slow_page=0, seconds=0)
    coingecko.fail = steal
    run = ingest_run(source_name="coingecko", trigger="cli")
    assert run.status == "failed"
    assert run.error_class == "etl.exceptions.LeaseLostError"
    assert Quote.objects.count() == 50  # pages 1 and 2 only
    assert Checkpoint.objects.get(source="coingecko").cursor == {"next_page": 3}
    assert SourceLease.objects.get(source="coingecko").holder == usurper


# --- The reaper ---------------------------------------------------------------------------------


@pytest.fixture
def eager():
    with celery_eager():
        yield


def dead_run(source: str) -> Run:
    """A run whose process died: running, its claim's heartbeat stopped a lease ago."""
    old = timezone.now() - dt.timedelta(seconds=django_settings.ETL_LEASE_SECONDS + 5)
    run = Run.objects.create(source=source, trigger="beat", started_at=old, heartbeat_at=old)
    SourceLease.objects.update_or_create(
        source=source, defaults={"holder": run.id, "expires_at": old, "renewed_at": old}
    )
    return run


def test_reaper_fails_dead_runs_and_runs_their_recovery(coingecko, eager):
    dead = dead_run("coingecko")
    alive_claim = SourceClaim(source="rss", holder=uuid.uuid4())
    alive = Run.objects.create(
        id=alive_claim.holder, source="rss", trigger="beat", started_at=timezone.now()
    )
    assert alive_claim.acquire()
    try:
        assert runs_reap() == [dead.id]
    finally:
        alive_claim.release()
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == "failed" and dead.finished_at and dead.error_class == ERROR_CLASS
    assert alive.status == "running"  # its claim was alive
    recovery = Run.objects.get(parent=dead)
    assert (recovery.trigger, recovery.status) == ("retry", "success")
    assert Quote.objects.count() == 100
    Run.objects.filter(pk=alive.pk).update(status="success")  # it finished meanwhile
    assert runs_reap() == []  # nothing left to do


def test_reaper_queues_a_retry_whose_worker_died_holding_it(coingecko, eager):
    now = timezone.now()
    orphaned = Run.objects.create(
        source="coingecko",
        trigger="beat",
        status="failed",
        started_at=now - dt.timedelta(minutes=10),
        finished_at=now - dt.timedelta(minutes=9),
        retry_at=now - dt.timedelta(minutes=3),
    )
    not_due = Run.objects.create(
        source="csv",
        trigger="beat",
        status="failed",
        started_at=now,
        finished_at=now,
        retry_at=now + dt.timedelta(minutes=1),
    )
    assert runs_reap() == [orphaned.id]
    recovery = Run.objects.get(parent=orphaned)
    assert (recovery.trigger, recovery.status) == ("retry", "success")
    assert not Run.objects.filter(parent=not_due).exists()
    assert runs_reap() == []  # queued once
