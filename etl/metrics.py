"""The ETL's Prometheus metrics, read from the database at scrape time (the run rollups, the
drift events and the upstream counters: small tables): right whichever process
ran the ETL (a worker, the CLI, another host) and surviving restarts. Registered with the
/metrics endpoint (kasparro.core.metrics) when the etl app is ready."""

from __future__ import annotations

import logging
from collections import defaultdict

from django.db import DatabaseError
from django.db.models import Count
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from etl.models import DriftEvent, UpstreamCounter
from kasparro.core.catalogue import source_names
from runs.models import DURATION_BUCKETS, Run, RunTally
from runs.selectors import runs_last_per_source

logger = logging.getLogger(__name__)


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
        # Run counters from the rollups kept at each run's start and end (runs.rollups): one
        # small read, never a scan of the run history.
        tallies = list(RunTally.objects.filter(runs__gt=0).order_by("source", "status"))
        runs = CounterMetricFamily(
            "etl_runs", "ETL runs by source and status.", labels=["source", "status"]
        )
        records = CounterMetricFamily(
            "etl_records_processed", "Items fetched by finished ETL runs.", labels=["source"]
        )
        quarantined = CounterMetricFamily(
            "quarantined_records", "Items quarantined, by source.", labels=["source"]
        )
        histogram = HistogramMetricFamily(
            "etl_duration_seconds", "Duration of finished ETL runs.", labels=["source"]
        )
        fetched: dict[str, int] = defaultdict(int)
        held: dict[str, int] = defaultdict(int)
        buckets: dict[str, list[int]] = {}
        seconds: dict[str, float] = defaultdict(float)
        for tally in tallies:
            runs.add_metric([tally.source, tally.status], tally.runs)
            fetched[tally.source] += tally.items_fetched
            held[tally.source] += tally.items_quarantined
            if tally.status in (Run.Status.RUNNING, Run.Status.SKIPPED):
                continue
            counts = [count for _, count in tally.cumulative_buckets()]
            known = buckets.setdefault(tally.source, [0] * len(counts))
            buckets[tally.source] = [a + b for a, b in zip(known, counts, strict=True)]
            seconds[tally.source] += tally.duration_seconds
        for source, total in fetched.items():
            records.add_metric([source], total)
        for source, total in held.items():
            quarantined.add_metric([source], total)
        bounds = [*(str(float(b)) for b in DURATION_BUCKETS), "+Inf"]
        for source, counts in buckets.items():
            histogram.add_metric([source], list(zip(bounds, counts, strict=True)), seconds[source])
        yield runs
        yield records
        yield histogram

        staleness = GaugeMetricFamily(
            "data_staleness_seconds",
            "Seconds since the source's last successful or partial run finished.",
            labels=["source"],
        )
        for source, last in runs_last_per_source(sources=source_names()).items():
            if last["staleness_seconds"] is not None:
                staleness.add_metric([source], last["staleness_seconds"])
        yield staleness

        drift = CounterMetricFamily(
            "schema_drift_events", "Schema drift events by source.", labels=["source"]
        )
        for row in DriftEvent.objects.values("source").annotate(n=Count("id")):
            drift.add_metric([row["source"]], row["n"])
        yield drift

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
