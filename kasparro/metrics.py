"""Prometheus metrics at /metrics.

Request and database metrics come from django-prometheus; API request counts and latencies from
our middleware. Under gunicorn they are aggregated across worker processes by prometheus_client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR). ETL metrics are derived from the database at
scrape time, so they are right whichever process ran the ETL (a worker, the CLI, another host)
and survive restarts. Labels are bounded: sources, statuses and URL routes, never ids or paths
with query strings.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Q, Sum
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from kasparro.exceptions import error_body

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
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)


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


class EtlCollector:
    """ETL metrics read from the database at scrape time."""

    NAMES = (
        ("kasparro_metrics_database_up", GaugeMetricFamily),
        ("etl_runs", CounterMetricFamily),
        ("etl_records_processed", CounterMetricFamily),
        ("etl_duration_seconds", HistogramMetricFamily),
        ("data_staleness_seconds", GaugeMetricFamily),
        ("schema_drift_events", CounterMetricFamily),
        ("quarantined_records", CounterMetricFamily),
        ("upstream_requests", CounterMetricFamily),
        ("upstream_rate_limited", CounterMetricFamily),
    )

    def describe(self):
        """Names only: registering must not query the database."""
        return [family(name, "") for name, family in self.NAMES]

    def collect(self):
        from etl.models import DriftEvent, UpstreamCounter
        from etl.sources import source_names
        from runs.models import Run

        up = GaugeMetricFamily("kasparro_metrics_database_up", "1 if the ETL metrics could be read")
        try:
            families = list(self._families(Run, DriftEvent, UpstreamCounter, source_names()))
        except DatabaseError:
            logger.warning("metrics: database unavailable", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    @staticmethod
    def _families(Run, DriftEvent, UpstreamCounter, sources):
        runs = CounterMetricFamily(
            "etl_runs", "ETL runs by source and status.", labels=["source", "status"]
        )
        for row in Run.objects.values("source", "status").annotate(n=Count("id")):
            runs.add_metric([row["source"], row["status"]], row["n"])
        yield runs

        records = CounterMetricFamily(
            "etl_records_processed", "Items fetched by ETL runs.", labels=["source"]
        )
        for row in Run.objects.values("source").annotate(n=Sum("items_fetched")):
            records.add_metric([row["source"]], row["n"] or 0)
        yield records

        duration = ExpressionWrapper(
            F("finished_at") - F("started_at"), output_field=DurationField()
        )
        finished = Run.objects.filter(finished_at__isnull=False).exclude(status=Run.Status.SKIPPED)
        aggregates = {
            f"le_{b}": Count("id", filter=Q(d__lte=timedelta(seconds=b))) for b in DURATION_BUCKETS
        }
        histogram = HistogramMetricFamily(
            "etl_duration_seconds", "Duration of finished ETL runs.", labels=["source"]
        )
        for row in (
            finished.annotate(d=duration)
            .values("source")
            .annotate(n=Count("id"), total=Sum("d"), **aggregates)
        ):
            buckets = [(str(float(b)), row[f"le_{b}"]) for b in DURATION_BUCKETS]
            buckets.append(("+Inf", row["n"]))
            total = row["total"]
            seconds = total.total_seconds() if isinstance(total, timedelta) else (total or 0) / 1e6
            histogram.add_metric([row["source"]], buckets, seconds)
        yield histogram

        staleness = GaugeMetricFamily(
            "data_staleness_seconds",
            "Seconds since the source's last successful or partial run finished.",
            labels=["source"],
        )
        last = dict(
            Run.objects.filter(status__in=[Run.Status.SUCCESS, Run.Status.PARTIAL])
            .values("source")
            .annotate(last=Max("finished_at"))
            .values_list("source", "last")
        )
        now = timezone.now()
        for source in sources:
            if last.get(source):
                staleness.add_metric([source], (now - last[source]).total_seconds())
        yield staleness

        drift = CounterMetricFamily(
            "schema_drift_events", "Schema drift events by source.", labels=["source"]
        )
        for row in DriftEvent.objects.values("source").annotate(n=Count("id")):
            drift.add_metric([row["source"]], row["n"])
        yield drift

        quarantined = CounterMetricFamily(
            "quarantined_records", "Items quarantined, by source.", labels=["source"]
        )
        for row in Run.objects.values("source").annotate(n=Sum("items_quarantined")):
            quarantined.add_metric([row["source"]], row["n"] or 0)
        yield quarantined

        upstream = CounterMetricFamily(
            "upstream_requests",
            "Requests to upstreams by HTTP status.",
            labels=["source", "status"],
        )
        limited = CounterMetricFamily(
            "upstream_rate_limited", "Upstream 429 answers.", labels=["source"]
        )
        for source, status, count in UpstreamCounter.objects.values_list(
            "source", "status", "count"
        ):
            upstream.add_metric([source, status], count)
            if status == "429":
                limited.add_metric([source], count)
        yield upstream
        yield limited


_etl_collector = EtlCollector()
REGISTRY.register(_etl_collector)


def _registry():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(_etl_collector)
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


def metrics_view(request):
    if not _allowed(request):
        body = error_body(403, "forbidden", "Metrics are protected: send the metrics token.")
        return JsonResponse(body, status=403)
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
