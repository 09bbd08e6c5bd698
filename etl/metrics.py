"""The ETL's Prometheus metrics, read from the database at scrape time: right whichever process
ran the ETL (a worker, the CLI, another host) and surviving restarts. Registered with the
/metrics endpoint (kasparro.core.metrics) when the etl app is ready."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import DatabaseError
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Q, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from etl.models import DriftEvent, UpstreamCounter
from kasparro.core.catalogue import source_names
from runs.models import Run
from runs.selectors import usable

logger = logging.getLogger(__name__)

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)


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
        up = GaugeMetricFamily("kasparro_metrics_database_up", "1 if the ETL metrics could be read")
        try:
            families = list(self._families())
        except DatabaseError:
            logger.warning("metrics: database unavailable", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    @staticmethod
    def _families():
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
            Run.objects.filter(usable())
            .values("source")
            .annotate(last=Max("finished_at"))
            .values_list("source", "last")
        )
        now = timezone.now()
        for source in source_names():
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
