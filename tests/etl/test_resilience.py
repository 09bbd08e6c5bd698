"""Resilience: HTTP retries and backoff, shared rate limits, faults, dead workers, bad input."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import subprocess
import time
import uuid

import pytest
from django.conf import settings as django_settings
from werkzeug import Response

from crypto.models import Article, Quote
from etl.exceptions import TransientUpstreamError, UpstreamError
from etl.faults import FaultPlan
from etl.http import HttpClient, parse_retry_after
from etl.models import Checkpoint, QuarantinedRecord
from etl.pipeline.run import ingest_run
from runs.models import Run
from tests.support import PYTHON, ROOT, celery_eager, process_env

pytestmark = pytest.mark.django_db


def quote_rows() -> list[tuple]:
    return sorted(
        Quote.objects.values_list("asset__slug", "source", "observed_at", "price_usd", "market_cap")
    )


# --- HTTP client --------------------------------------------------------------------------------


def test_retry_after_in_seconds_is_honoured(coingecko, settings):
    """Upstream answers 429 with Retry-After: 2: the client waits at least 2 s, then succeeds."""
    settings.ETL_HTTP_MAX_RETRIES = 2
    settings.ETL_HTTP_BACKOFF_CAP = 10
    answers = iter([Response("slow down", status=429, headers={"Retry-After": "2"})])
    coingecko.fail = lambda page: next(answers, None)
    started = time.monotonic()
    run = ingest_run(source_name="coingecko", trigger="cli")
    assert time.monotonic() - started >= 2.0
    assert run.status == "success"
    assert len(coingecko.requests) == 3  # the 429, then pages 1 and 2


def test_retry_after_as_http_date():
    now = dt.datetime(2025, 12, 28, 12, 0, 0, tzinfo=dt.UTC)
    later = email.utils.format_datetime(now + dt.timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(later, now=now) == 7
    assert parse_retry_after("3") == 3
    assert parse_retry_after("soon") is None


def test_backoff_is_full_jitter_under_a_cap(settings):
    settings.ETL_HTTP_BACKOFF_BASE = 1.0
    settings.ETL_HTTP_BACKOFF_CAP = 8.0
    client = HttpClient(source="t", rate_limit_per_minute=0)
    for attempt in range(10):
        waits = [client._backoff(attempt) for _ in range(200)]
        assert min(waits) >= 0 and max(waits) <= min(8.0, 2**attempt)
    assert max(client._backoff(9) for _ in range(200)) > 4  # the cap, not 0, bounds it


def test_other_4xx_fails_at_once_and_says_what_to_do(coingecko):
    coingecko.fail = lambda page: Response("bad key", status=401)
    run = ingest_run(source_name="coingecko", trigger="cli")
    assert run.status == "failed"
    assert "HTTP 401" in run.error_message and "COINGECKO_API_KEY" in run.error_message
    assert run.error_class == "etl.exceptions.UpstreamError"
    assert not run.retryable  # permanent: no automatic retry
    assert len(coingecko.requests) == 1  # not retried


def test_5xx_is_retried_with_backoff_then_succeeds(coingecko, settings):
    settings.ETL_HTTP_MAX_RETRIES = 3
    answers = iter([Response("x", status=502), Response("y", status=503)])
    coingecko.fail = lambda page: next(answers, None)
    assert ingest_run(source_name="coingecko", trigger="cli").status == "success"


def test_truncated_body_is_an_error_not_data(coingecko, settings):
    settings.ETL_HTTP_MAX_RETRIES = 0
    body = json.dumps(coingecko.pages[0])[:5000]  # cut in the middle
    coingecko.fail = lambda page: Response(body, content_type="application/json")
    run = ingest_run(source_name="coingecko", trigger="cli")
    assert run.status == "failed"
    assert "invalid or truncated JSON" in run.error_message
    assert Quote.objects.count() == 0


def test_malformed_json_fails_with_a_clear_error(coingecko):
    coingecko.fail = lambda page: Response("{'not': json}", content_type="application/json")
    run = ingest_run(source_name="coingecko", trigger="cli")
    assert run.status == "failed" and "invalid or truncated JSON" in run.error_message


def test_client_raises_typed_errors(httpserver, settings):
    settings.ETL_HTTP_MAX_RETRIES = 1
    httpserver.expect_request("/down").respond_with_data("x", status=503)
    httpserver.expect_request("/gone").respond_with_data("x", status=404)
    client = HttpClient(source="t", rate_limit_per_minute=0)
    with pytest.raises(TransientUpstreamError, match="HTTP 503"):
        client.get(httpserver.url_for("/down"))
    with pytest.raises(UpstreamError, match="HTTP 404"):
        client.get(httpserver.url_for("/gone"))


# --- Rate limits --------------------------------------------------------------------------------


needs_redis = pytest.mark.skipif(
    not django_settings.REDIS_URL, reason="the shared limiter lives in Redis (REDIS_URL)"
)

LIMITED_SCRIPT = """
import os, sys, django
django.setup()
from etl.http import HttpClient
client = HttpClient(source=os.environ["LIMIT_NAME"], rate_limit_per_minute=int(os.environ["RPM"]))
for _ in range(int(os.environ["N"])):
    client.get(os.environ["URL"])
"""


@needs_redis
@pytest.mark.slow
def test_two_processes_never_exceed_the_shared_rate(httpserver):
    """Two processes share one upstream limit through Redis; counted on the server's side."""
    stamps: list[float] = []

    def handler(request):
        stamps.append(time.monotonic())
        return Response("[]", content_type="application/json")

    httpserver.expect_request("/limited").respond_with_handler(handler)
    env = process_env(
        LIMIT_NAME=f"test-{uuid.uuid4().hex[:8]}",
        RPM="120",
        N="6",
        URL=httpserver.url_for("/limited"),
    )
    workers = [
        subprocess.Popen([PYTHON, "-c", LIMITED_SCRIPT], cwd=ROOT, env=env) for _ in range(2)
    ]
    for worker in workers:
        assert worker.wait(timeout=60) == 0
    assert len(stamps) == 12
    stamps.sort()
    # 120/min is one request per 0.5 s: any 2 s window holds at most 4 (+1 for the edges).
    for i, start in enumerate(stamps):
        assert sum(1 for t in stamps[i:] if t - start < 2.0) <= 5
    assert stamps[-1] - stamps[0] >= 11 * 0.5 * 0.9


@needs_redis
def test_a_429_slows_the_shared_budget():
    from etl.ratelimit import RateLimiter

    limiter = RateLimiter(f"test-{uuid.uuid4().hex[:8]}", per_minute=6000)
    assert limiter.reserve() < 0.05
    limiter.penalize(1.5)
    other_process_view = RateLimiter(limiter.key.rsplit(":", 1)[1], per_minute=6000)
    assert 1.0 < other_process_view.reserve() <= 1.6


def test_in_process_limiter_spaces_requests(settings):
    from etl.ratelimit import RateLimiter

    settings.REDIS_URL = ""
    limiter = RateLimiter(f"local-{uuid.uuid4().hex[:8]}", per_minute=600)
    waits = [limiter.reserve() for _ in range(5)]
    assert waits[0] < 0.01
    assert waits[-1] == pytest.approx(0.4, abs=0.05)


# --- Celery retries -----------------------------------------------------------------------------


def test_task_retries_transient_failures_as_linked_runs(coingecko, settings):
    from etl.tasks import ingest, retry_countdown

    settings.ETL_TASK_MAX_RETRIES = 2
    coingecko.fail = lambda page: Response("down", status=503)
    with celery_eager():
        ingest.apply(args=["coingecko"])
    runs = list(Run.objects.order_by("started_at"))
    assert [r.trigger for r in runs] == ["beat", "retry", "retry"]
    assert [r.status for r in runs] == ["failed"] * 3
    # The first two were given a retry (the reaper's cue if the retry never starts).
    assert [r.retry_at is not None for r in runs] == [True, True, False]
    assert runs[1].parent_id == runs[0].id and runs[2].parent_id == runs[1].id
    assert all(0 < retry_countdown(n) <= settings.ETL_TASK_RETRY_CAP for n in range(20))


def test_task_does_not_retry_permanent_failures(coingecko, settings):
    from etl.tasks import ingest

    coingecko.fail = lambda page: Response("no", status=403)
    with celery_eager():
        ingest.apply(args=["coingecko"])
    assert Run.objects.count() == 1


def test_task_time_limits_and_visibility_timeout_are_consistent():
    from kasparro.celery import app

    soft, hard = app.conf.task_soft_time_limit, app.conf.task_time_limit
    assert 0 < soft < hard
    if django_settings.REDIS_URL:
        visibility = django_settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
        assert visibility > hard + django_settings.ETL_TASK_RETRY_CAP


# --- Faults -------------------------------------------------------------------------------------


def test_random_faults_everywhere_then_clean_runs_give_fault_free_data(coingecko, csv_drop, feeds):
    """Faults at every point with probability 0.3 over 20 runs, then runs without faults until
    success: the data equals that of a fault-free run."""
    for source in ("coingecko", "csv", "rss"):
        ingest_run(source_name=source, trigger="cli")
    expected_quotes = quote_rows()
    expected_articles = sorted(Article.objects.values_list("feed", "guid", "title"))
    Quote.objects.all().delete()
    Article.objects.all().delete()
    Checkpoint.objects.all().delete()

    plan = FaultPlan.parse(
        "seed=11,"
        + ",".join(
            f"*:{point}:0.3" for point in ("fetch", "parse", "normalize", "load", "checkpoint")
        )
    )
    statuses = [
        ingest_run(source_name=source, trigger="cli", faults=plan).status
        for _ in range(7)
        for source in ("coingecko", "csv", "rss")
    ][:20]
    assert "failed" in statuses
    for source in ("coingecko", "csv", "rss"):
        for _ in range(5):
            if ingest_run(source_name=source, trigger="cli").status == "success":
                break
    # CoinGecko keeps its cycle cursor: one more clean pass refreshes every page.
    ingest_run(source_name="coingecko", trigger="cli")
    assert quote_rows() == expected_quotes
    assert sorted(Article.objects.values_list("feed", "guid", "title")) == expected_articles


def test_faults_are_refused_in_production(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.ETL_FAULTS_ALLOWED = False
    with pytest.raises(ImproperlyConfigured, match="refused"):
        FaultPlan.parse("coingecko:fetch:0.5")
    assert not FaultPlan.parse("")


# --- Bad input ----------------------------------------------------------------------------------


def test_wrong_types_and_huge_numbers_are_quarantined(coingecko):
    page = coingecko.pages[0]
    page[0] = {**page[0], "current_price": {"usd": 1}}
    page[1] = {**page[1], "market_cap": 10**40}
    page[2] = {**page[2], "last_updated": [2025, 12, 28]}
    page[3] = {**page[3], "id": 42}
    page[4] = None
    run = ingest_run(source_name="coingecko", trigger="cli")
    assert run.status == "partial"
    assert run.items_quarantined == 5 and run.items_inserted == 95
    reasons = " | ".join(QuarantinedRecord.objects.values_list("reason", flat=True))
    assert "expected a number" in reasons and "out of range" in reasons


def test_xml_bomb_in_a_feed_does_not_hang_or_explode(feeds, settings):
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<rss version="2.0"><channel><title>t</title>
<item><title>&lol9;</title><link>https://x.example/a</link></item></channel></rss>"""
    feeds.bodies["decrypt"] = bomb
    started = time.monotonic()
    run = ingest_run(source_name="rss", trigger="cli")
    assert time.monotonic() - started < 10
    assert run.status in ("partial", "success")
    assert not Article.objects.filter(title__contains="lollollollollol" * 100).exists()
    assert Article.objects.count() >= 25 + 30  # the other feeds landed


@pytest.mark.parametrize(
    ("name", "content", "expect"),
    [
        (
            "latin1.csv",
            "coin_id,name,symbol,price\nbitcoin,Bitcoïn,btc,87000\n".encode("latin-1"),
            {"inserted": 1},
        ),
        (
            "bom.csv",
            b"\xef\xbb\xbfcoin_id;symbol;price_usd\nbitcoin;btc;87 000,5\n",
            {"inserted": 1},
        ),
        ("empty.csv", b"", {"error": "empty file"}),
        (
            "cut.csv",
            b"coin_id,symbol,price_usd\nbitcoin,btc,87000\nethereum,eth\n",
            {"inserted": 1, "quarantined": 1},
        ),
    ],
)
def test_bad_csv_files_never_crash_and_never_vanish(
    coingecko, empty_csv_drop, name, content, expect
):
    import os

    ingest_run(source_name="coingecko", trigger="cli")
    path = empty_csv_drop / name
    path.write_bytes(content)
    old = time.time() - 3600  # written an hour ago: a last line without newline is complete
    os.utime(path, (old, old))
    run = ingest_run(source_name="csv", trigger="cli")
    if "error" in expect:
        assert run.status == "failed" and expect["error"] in run.error_message
        return
    assert run.items_inserted == expect["inserted"]
    assert run.items_quarantined == expect.get("quarantined", 0)
    if expect.get("quarantined"):
        assert QuarantinedRecord.objects.get().reason_code == "malformed_row"
