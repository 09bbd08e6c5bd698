"""Shared fixtures: local upstream servers fed with real samples, a temporary CSV drop folder,
and settings that keep every test off the internet and fast."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.cache import cache
from werkzeug import Request, Response

FIXTURES = Path(__file__).parent / "fixtures"
FEEDS = ("coindesk", "cointelegraph", "decrypt")


def fixture_bytes(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


def coingecko_pages() -> list[list[dict]]:
    return [
        json.loads(fixture_bytes("coingecko/markets_page1.json")),
        json.loads(fixture_bytes("coingecko/markets_page2.json")),
    ]


@pytest.fixture(autouse=True)
def _offline_fast_settings(settings, tmp_path):
    """No test reaches a public host; retries are instant; nothing is rate limited unless a
    test asks for it; Redis keys and in-process throttle counts are private to the test."""
    settings.COINGECKO_BASE_URL = "http://127.0.0.1:9/unreachable"
    settings.RSS_FEED_URLS = []
    settings.CSV_DROP_DIR = tmp_path / "empty-drop"
    settings.COINGECKO_RATE_LIMIT = 0
    settings.RSS_RATE_LIMIT = 0
    settings.ETL_HTTP_MAX_RETRIES = 1
    settings.ETL_HTTP_BACKOFF_BASE = 0.001
    settings.ETL_HTTP_BACKOFF_CAP = 0.01
    settings.ETL_HTTP_CONNECT_TIMEOUT = 2
    settings.ETL_HTTP_READ_TIMEOUT = 5
    settings.ETL_FAULTS = ""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    from runs import health

    health._components = None  # the checks /health holds for 2 s are not another test's
    from kasparro.core import metrics

    metrics._scrape = None  # nor the scrape /metrics holds for 1 s
    prefix = None
    if "KEY_PREFIX" in settings.CACHES["default"]:
        prefix = f"test-{uuid.uuid4().hex[:8]}"
        caches = json.loads(json.dumps(settings.CACHES))
        caches["default"]["KEY_PREFIX"] = prefix
        settings.CACHES = caches
    yield
    from kasparro.core.throttle import throttle_local_clear

    throttle_local_clear()
    if prefix is None:
        cache.clear()
    else:
        # Only this test's keys: cache.clear() would FLUSHDB the shared Redis database.
        import redis

        client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


class CoinGeckoServer:
    """`/api/v3/coins/markets` served from pages the test controls."""

    def __init__(self, httpserver) -> None:
        self.httpserver = httpserver
        self.pages: list[list[dict]] = coingecko_pages()
        self.requests: list[Request] = []
        self.fail: Callable[[int], Response | None] = lambda page: None
        httpserver.expect_request("/api/v3/coins/markets").respond_with_handler(self._handle)

    @property
    def base_url(self) -> str:
        return self.httpserver.url_for("/api/v3").rstrip("/")

    def _handle(self, request: Request) -> Response:
        self.requests.append(request)
        page = int(request.args.get("page", "1"))
        per_page = int(request.args.get("per_page", "250"))
        failure = self.fail(page)
        if failure is not None:
            return failure
        items = self.pages[page - 1][:per_page] if page <= len(self.pages) else []
        return Response(json.dumps(items), content_type="application/json")


@pytest.fixture
def coingecko(httpserver, settings) -> CoinGeckoServer:
    server = CoinGeckoServer(httpserver)
    settings.COINGECKO_BASE_URL = server.base_url
    settings.COINGECKO_PAGES = 2
    settings.COINGECKO_PER_PAGE = 50
    settings.COINGECKO_API_KEY = "test-demo-key-123"
    return server


class FeedServer:
    """RSS feeds with ETag / If-None-Match support, counting what it serves."""

    def __init__(self, httpserver) -> None:
        self.httpserver = httpserver
        self.bodies = {name: fixture_bytes(f"rss/{name}.rss") for name in FEEDS}
        self.served: dict[str, int] = dict.fromkeys(FEEDS, 0)
        self.not_modified: dict[str, int] = dict.fromkeys(FEEDS, 0)
        for name in FEEDS:
            httpserver.expect_request(f"/feeds/{name}.rss").respond_with_handler(
                lambda request, name=name: self._handle(name, request)
            )

    def url(self, name: str) -> str:
        return self.httpserver.url_for(f"/feeds/{name}.rss")

    @property
    def urls(self) -> list[str]:
        return [self.url(name) for name in FEEDS]

    def etag(self, name: str) -> str:
        import hashlib

        return '"' + hashlib.sha256(self.bodies[name]).hexdigest()[:16] + '"'

    def _handle(self, name: str, request: Request) -> Response:
        etag = self.etag(name)
        if request.headers.get("If-None-Match") == etag:
            self.not_modified[name] += 1
            return Response(status=304, headers={"ETag": etag})
        self.served[name] += 1
        return Response(
            self.bodies[name], content_type="application/rss+xml", headers={"ETag": etag}
        )


@pytest.fixture
def feeds(httpserver, settings) -> FeedServer:
    server = FeedServer(httpserver)
    settings.RSS_FEED_URLS = server.urls
    return server


@pytest.fixture
def csv_drop(tmp_path, settings) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    for path in (FIXTURES / "csv").glob("*.csv"):
        shutil.copy(path, folder / path.name)
    settings.CSV_DROP_DIR = folder
    return folder


@pytest.fixture
def empty_csv_drop(tmp_path, settings) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    settings.CSV_DROP_DIR = folder
    return folder


@pytest.fixture
def loaded(coingecko, csv_drop, feeds):
    """All three sources ingested from the real samples."""
    from etl.pipeline.run import ingest_run

    runs = [ingest_run(source_name=s, trigger="cli") for s in ("coingecko", "csv", "rss")]
    assert [r.status for r in runs] == ["success"] * 3
    return runs
