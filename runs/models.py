"""What happened: one Run row per attempt to ingest a source."""

from __future__ import annotations

import uuid

from django.db import models

# What a run counts as its pages commit (runs.services.run_page_committed), summed per source
# and status by the rollups (RunTally).
RUN_COUNTERS = (
    "items_fetched",
    "items_inserted",
    "items_updated",
    "items_unchanged",
    "items_quarantined",
    "drift_findings",
)


class Run(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCESS = "success", "Success"
        PARTIAL = "partial", "Partial"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    class Trigger(models.TextChoices):
        BEAT = "beat", "Schedule"
        MANUAL = "manual", "Manual"
        RETRY = "retry", "Retry"
        CLI = "cli", "Command line"
        REPLAY = "replay", "Replay"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.CharField(max_length=50)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    task_id = models.CharField(max_length=255, blank=True)
    host = models.CharField(max_length=255, blank=True, help_text="hostname:pid of the worker")

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the automatic retry of this failed run is due; the reaper queues it "
        "itself if it has not started by then (its worker may have died holding it).",
    )

    pages = models.PositiveIntegerField(default=0)
    items_fetched = models.PositiveIntegerField(default=0)
    items_inserted = models.PositiveIntegerField(default=0)
    items_updated = models.PositiveIntegerField(default=0)
    items_unchanged = models.PositiveIntegerField(default=0)
    items_quarantined = models.PositiveIntegerField(default=0)
    drift_findings = models.PositiveIntegerField(
        default=0, help_text="Drift findings (warning or breaking) seen by this run."
    )

    # What the run saw, for comparisons: newest price per asset slug, and how old the newest
    # data point was when the run finished.
    asset_prices = models.JSONField(null=True, blank=True, editable=False)
    freshness_lag_seconds = models.FloatField(null=True, blank=True)
    # Anomalies against the trailing window of the source, scored when the run finished.
    findings = models.JSONField(default=list, blank=True, editable=False)

    error_class = models.CharField(max_length=200, blank=True)
    retryable = models.BooleanField(
        default=False, help_text="Failed in a way worth another try soon (transient)."
    )
    error_message = models.TextField(blank=True)
    checkpoint_before = models.JSONField(null=True, blank=True)
    checkpoint_after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["source", "-started_at"], name="run_source_started_idx"),
            models.Index(fields=["status", "-started_at"], name="run_status_started_idx"),
            models.Index(fields=["-started_at"], name="run_started_idx"),
            models.Index(
                fields=["retry_at"],
                name="run_retry_due_idx",
                condition=models.Q(retry_at__isnull=False),
            ),
            # The runs that have an error: what the admin's search reads.
            models.Index(
                fields=["-started_at"],
                name="run_error_started_idx",
                condition=~models.Q(error_message=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.status} {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


# Upper bounds (seconds) of the run-duration histogram that /metrics exposes; a run longer than
# the last falls in +Inf.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)


class SourceRollup(models.Model):
    """One row per source, kept by runs.rollups as runs start and finish: what /health, /stats
    and the pipeline page read instead of aggregating every run ever recorded."""

    source = models.CharField(max_length=50, primary_key=True)
    last_run = models.ForeignKey(
        Run,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The newest run that was not skipped (it may still be running).",
    )
    last_run_started_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_usable_at = models.DateTimeField(
        null=True, blank=True, help_text="When the last successful or partial run finished."
    )

    def __str__(self) -> str:
        return self.source


class RunTally(models.Model):
    """Per source and status, since the first run: how many runs, what they counted and how
    long they took (a histogram over DURATION_BUCKETS, each run in exactly one bucket). The
    /metrics counters; a run is counted when it starts (as running) and moves to its final
    status when it finishes, so deleting old runs never changes a tally."""

    source = models.CharField(max_length=50)
    status = models.CharField(max_length=10, choices=Run.Status.choices)
    runs = models.BigIntegerField(default=0)
    items_fetched = models.BigIntegerField(default=0)
    items_inserted = models.BigIntegerField(default=0)
    items_updated = models.BigIntegerField(default=0)
    items_unchanged = models.BigIntegerField(default=0)
    items_quarantined = models.BigIntegerField(default=0)
    drift_findings = models.BigIntegerField(default=0)
    duration_seconds = models.FloatField(default=0.0, help_text="Sum over finished runs.")
    le_1 = models.BigIntegerField(default=0)
    le_5 = models.BigIntegerField(default=0)
    le_15 = models.BigIntegerField(default=0)
    le_30 = models.BigIntegerField(default=0)
    le_60 = models.BigIntegerField(default=0)
    le_120 = models.BigIntegerField(default=0)
    le_300 = models.BigIntegerField(default=0)
    le_600 = models.BigIntegerField(default=0)
    le_1800 = models.BigIntegerField(default=0)
    le_3600 = models.BigIntegerField(default=0)
    le_inf = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "status"], name="runtally_source_status")
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.status}: {self.runs}"

    def cumulative_buckets(self) -> list[tuple[float, int]]:
        """(upper bound, runs at most that long) for each bound, +Inf last."""
        total, buckets = 0, []
        for bound in DURATION_BUCKETS:
            total += getattr(self, f"le_{bound}")
            buckets.append((float(bound), total))
        buckets.append((float("inf"), total + self.le_inf))
        return buckets
