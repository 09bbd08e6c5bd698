"""/metrics: ETL counters true across processes, API metrics across gunicorn workers,
bounded labels, protection."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request

import pytest

from tests.support import PYTHON, ROOT, gunicorn, process_env

pytestmark = pytest.mark.django_db(transaction=True)


def sample(text: str, name: str, **labels) -> float | None:
    """The value of one sample of the exposition text, or None."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_etl_metrics_come_from_a_run_in_another_process(client, coingecko):
    env = process_env(
        COINGECKO_BASE_URL=coingecko.base_url,
        COINGECKO_PAGES="2",
        COINGECKO_PER_PAGE="50",
        COINGECKO_RATE_LIMIT="0",
    )
    done = subprocess.run(
        [PYTHON, "manage.py", "etl", "run", "--source", "coingecko", "--no-progress"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert sample(text, "etl_runs_total", source="coingecko", status="success") == 1
    assert sample(text, "etl_records_processed_total", source="coingecko") == 100
    assert 0 <= sample(text, "data_staleness_seconds", source="coingecko") < 60
    assert sample(text, "upstream_requests_total", source="coingecko", status="200") == 2
    assert sample(text, "etl_duration_seconds_count", source="coingecko") == 1
    assert sample(text, "etl_duration_seconds_bucket", source="coingecko", le="+Inf") == 1
    assert sample(text, "kasparro_metrics_database_up") == 1
    assert sample(text, "quarantined_records_total", source="coingecko") == 0
    # django-prometheus's own request and database metrics are there too.
    assert "django_http_requests_total_by_method_total" in text
    assert "django_db_execute_total" in text


def test_rate_limited_and_drift_counters(client, coingecko, settings):
    from werkzeug import Response

    from etl.pipeline.run import ingest_run

    settings.ETL_HTTP_MAX_RETRIES = 1
    answers = iter([Response("slow down", status=429, headers={"Retry-After": "0"})])
    coingecko.fail = lambda page: next(answers, None)
    ingest_run(source_name="coingecko", trigger="cli")
    text = client.get("/metrics").content.decode()
    assert sample(text, "upstream_rate_limited_total", source="coingecko") == 1
    assert sample(text, "upstream_requests_total", source="coingecko", status="429") == 1


def test_api_metrics_use_routes_not_paths(client, db):
    client.get("/data", {"limit": 5})
    client.get("/assets/bitcoin")
    client.get("/assets/ethereum?x=1")
    text = client.get("/metrics").content.decode()
    assert sample(text, "api_requests_total", endpoint="/data", status="200") >= 1
    assert sample(text, "api_requests_total", endpoint="/assets/<key:slug>", status="404") >= 2
    assert "bitcoin" not in text and "x=1" not in text
    assert sample(text, "api_request_duration_seconds_count", endpoint="/data") >= 1


def test_metrics_can_be_protected(client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200


@pytest.mark.slow
def test_api_counters_add_up_across_gunicorn_workers(tmp_path):
    env = process_env(
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"), API_RATE_PER_ADDRESS="100000/s"
    )
    with gunicorn(env, workers=3) as base:
        for _ in range(30):  # new connections: spread over the workers
            urllib.request.urlopen(f"{base}/assets", timeout=5).read()  # noqa: S310
        text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()  # noqa: S310
    assert sample(text, "api_requests_total", endpoint="/assets", status="200") == 30


def test_a_scrape_is_held_for_the_shipped_second_then_gathered_again(client, db):
    from kasparro.core import metrics

    assert metrics.SCRAPE_SECONDS == 1.0  # as shipped
    client.get("/data", {"limit": 5})
    first = client.get("/metrics").content.decode()
    client.get("/data", {"limit": 5})
    held = client.get("/metrics").content.decode()
    assert held == first  # within the second: the same text
    time.sleep(metrics.SCRAPE_SECONDS + 0.05)
    fresh = client.get("/metrics").content.decode()
    count = sample(first, "api_requests_total", endpoint="/data", status="200")
    assert sample(fresh, "api_requests_total", endpoint="/data", status="200") == count + 1
