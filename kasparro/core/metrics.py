"""Prometheus metrics at /metrics: the endpoint, its access rule and the API request metrics.

Request and database metrics come from django-prometheus; API request counts and latencies from
our middleware. Under gunicorn they are aggregated across worker processes by prometheus_client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR). Apps add collectors that read the database at
scrape time (`register_collector`; the ETL's are in etl/metrics.py). A scrape's text is held
for `SCRAPE_SECONDS` per process. Labels are bounded:
sources, statuses and URL routes, never ids or paths with query strings.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from kasparro.core.errors import error_body

logger = logging.getLogger(__name__)

API_REQUESTS = Counter(
    "api_requests_total", "API requests by route and status.", ["endpoint", "status"]
)
API_DURATION = Histogram(
    "api_request_duration_seconds",
    "API request latency by route.",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class ApiMetricsMiddleware:
    """Counts requests by route pattern (e.g. `assets/<key:slug>`) and status."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        endpoint = "/" + match.route if match and match.route else "unmatched"
        if endpoint.startswith("/admin/") or endpoint == "/metrics":
            return response
        API_REQUESTS.labels(endpoint=endpoint, status=str(response.status_code)).inc()
        API_DURATION.labels(endpoint=endpoint).observe(time.perf_counter() - started)
        return response


_database_collectors: list = []


def register_collector(collector) -> None:
    """Add a collector that reads the database at scrape time (the apps' own metrics, e.g.
    etl.metrics). It joins the default registry and, under gunicorn, the per-scrape one."""
    REGISTRY.register(collector)
    _database_collectors.append(collector)


def _registry():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for collector in _database_collectors:
            registry.register(collector)
        return registry
    return REGISTRY


def _allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        sent = request.META.get("HTTP_AUTHORIZATION", "")
        return sent in (f"Bearer {token}", f"Token {token}")
    networks = settings.METRICS_ALLOWED_NETWORKS
    if networks:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(n, strict=False) for n in networks)
    return True


# A scrape's text is kept this long per process: gathering it reads every worker's metric files
# and the database's counters (about 10 ms), and a second-old view of counters is still true
# for a scraper that comes every 15 s; a dashboard polling hard costs one gathering a second.
SCRAPE_SECONDS = 1.0
_scrape: tuple[float, bytes] | None = None
_scrape_lock = threading.Lock()


def _scrape_text() -> bytes:
    global _scrape
    held = _scrape
    if held is None or time.monotonic() - held[0] > SCRAPE_SECONDS:
        with _scrape_lock:  # one gathering at a time; the others wait for it
            held = _scrape
            if held is None or time.monotonic() - held[0] > SCRAPE_SECONDS:
                held = _scrape = (time.monotonic(), generate_latest(_registry()))
    return held[1]


def metrics_view(request):
    if not _allowed(request):
        body = error_body(403, "forbidden", "Metrics are protected: send the metrics token.")
        return JsonResponse(body, status=403)
    return HttpResponse(_scrape_text(), content_type=CONTENT_TYPE_LATEST)
