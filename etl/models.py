"""State of the ingestion machinery: raw payloads, checkpoints, quarantine and source leases."""

from __future__ import annotations

import zlib

from django.db import models


class RawBody(models.Model):
    """The bulk text of a page (CSV lines), zlib-compressed, stored once per distinct text.

    Content-addressed so that the same lines dropped again under another file name cost one
    more small RawRecord, not their body again (+22.5 MB per 1M CSV rows before). Deleted by
    the prune once no RawRecord refers to it (etl/services/retention.py).
    """

    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the text.")
    data = models.BinaryField()
    size = models.PositiveIntegerField(help_text="Compressed bytes.")

    def __str__(self) -> str:
        return f"body {self.digest[:12]} ({self.size} B)"

    @property
    def text(self) -> str:
        return zlib.decompress(bytes(self.data)).decode()


class RawRecord(models.Model):
    """One fetched page exactly as the source produced it, stored once per distinct content.

    Pages, not items, are the unit: a page is what one transaction commits, and what a replay
    re-processes without calling upstream. Kept `ETL_RAW_RETENTION_DAYS` after it was last
    fetched, unless a replay still needs it.
    """

    source = models.CharField(max_length=50)
    content_hash = models.CharField(max_length=64)
    payload = models.JSONField(help_text="The page's items, or metadata when it has a body.")
    body = models.ForeignKey(
        RawBody,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="pages",
        help_text="Bulk text of the page (CSV lines), shared by pages with the same text.",
    )
    payload_size = models.PositiveIntegerField(
        default=0, help_text="Bytes of the payload as JSON (its body counts in RawBody.size)."
    )
    item_count = models.PositiveIntegerField()
    page_ref = models.CharField(max_length=500, blank=True, help_text="Page, feed or file span.")
    run = models.ForeignKey("runs.Run", on_delete=models.PROTECT, related_name="raw_records")
    fetched_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(
        help_text="When a run last fetched this content; retention counts from here."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "content_hash"], name="rawrecord_source_hash_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["run"], name="rawrecord_run_idx"),
            models.Index(fields=["last_seen_at"], name="rawrecord_seen_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.page_ref} {self.content_hash[:12]}"

    @property
    def body_text(self) -> str | None:
        return None if self.body is None else self.body.text


class Checkpoint(models.Model):
    """Where a source resumes. Written only in the transaction that commits a page's data."""

    source = models.CharField(max_length=50, unique=True)
    cursor = models.JSONField(default=dict, blank=True)
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"checkpoint {self.source}"


class QuarantinedRecord(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        REPLAYED = "replayed", "Replayed"
        DISCARDED = "discarded", "Discarded"

    source = models.CharField(max_length=50)
    run = models.ForeignKey("runs.Run", on_delete=models.PROTECT, related_name="quarantined")
    raw_record = models.ForeignKey(
        RawRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="quarantined"
    )
    item_hash = models.CharField(max_length=64)
    payload = models.JSONField()
    reason_code = models.CharField(max_length=50)
    reason = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    occurrences = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "item_hash"], name="quarantine_source_item_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["source", "status", "-created_at"], name="quarantine_source_idx"),
            models.Index(fields=["reason_code"], name="quarantine_reason_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.reason_code}"

    # Items that are not JSON objects (null, a string, a list) are kept wrapped, so that a
    # JSON null is never confused with a missing payload.
    WRAPPED = "_item"

    @classmethod
    def wrap(cls, item: object) -> dict:
        return item if isinstance(item, dict) and cls.WRAPPED not in item else {cls.WRAPPED: item}

    @property
    def item(self) -> object:
        """The item exactly as the source produced it."""
        payload = self.payload
        if isinstance(payload, dict) and set(payload) == {self.WRAPPED}:
            return payload[self.WRAPPED]
        return payload


class SourceLease(models.Model):
    """One run per source at a time: the claim's record and fencing token. A live holder's
    heartbeat renews it every few seconds; a dead holder's lease expires (etl/services/leases.py).
    A page commits only while its run still holds the lease."""

    source = models.CharField(max_length=50, primary_key=True)
    holder = models.UUIDField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    renewed_at = models.DateTimeField(
        null=True, blank=True, help_text="The holder's last heartbeat."
    )

    def __str__(self) -> str:
        return f"lease {self.source}"


class SourcePolicy(models.Model):
    """How a source reacts to schema drift, and whether drift has paused it."""

    class Drift(models.TextChoices):
        EVOLVE = "evolve", "Evolve: apply confident renames automatically"
        FREEZE = "freeze", "Freeze: quarantine drifted items"
        PAUSE = "pause", "Pause: stop the source on breaking drift"

    source = models.CharField(max_length=50, primary_key=True)
    drift_policy = models.CharField(max_length=10, choices=Drift.choices)
    paused = models.BooleanField(default=False)
    paused_reason = models.TextField(blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "source policies"

    def __str__(self) -> str:
        return f"{self.source}: {self.drift_policy}{' (paused)' if self.paused else ''}"


class DriftEvent(models.Model):
    """One kind of drift on one source; the same drift seen again updates the same event."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    source = models.CharField(max_length=50)
    fingerprint = models.CharField(max_length=300)
    kind = models.CharField(max_length=20)
    fields = models.JSONField(help_text="The fields involved.")
    severity = models.CharField(max_length=10)
    confidence = models.PositiveSmallIntegerField()
    message = models.TextField()
    suggested_from = models.CharField(max_length=200, blank=True)
    suggested_to = models.CharField(max_length=200, blank=True)
    sample = models.JSONField(null=True, blank=True, help_text="An offending item.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    occurrences = models.PositiveIntegerField(default=1)
    runs = models.ManyToManyField("runs.Run", related_name="drift_events", blank=True)
    resolved_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    replay_run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-last_seen"]
        constraints = [
            models.UniqueConstraint(fields=["source", "fingerprint"], name="drift_source_fp_uniq")
        ]
        indexes = [models.Index(fields=["status", "-last_seen"], name="drift_status_idx")]

    def __str__(self) -> str:
        return f"{self.source} {self.severity} {self.fingerprint}"


class FieldMapping(models.Model):
    """An accepted rename: the value of `from_field` is read as `to_field` in normalize."""

    source = models.CharField(max_length=50)
    from_field = models.CharField(max_length=200)
    to_field = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    drift_event = models.ForeignKey(
        DriftEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="mappings"
    )
    accepted_by = models.ForeignKey(
        "auth.User",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty when the evolve policy applied it automatically.",
    )
    accepted_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "from_field", "to_field"], name="mapping_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source}: {self.from_field} -> {self.to_field}"


class UpstreamCounter(models.Model):
    """Requests made to each upstream, by HTTP status (or "error"), for /metrics: added to by
    every run whichever process it ran in."""

    source = models.CharField(max_length=50)
    status = models.CharField(max_length=10)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "status"], name="upstream_counter_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.status}: {self.count}"
