"""What happened: one Run row per attempt to ingest a source."""

from __future__ import annotations

import uuid

from django.db import models


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
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.status} {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
