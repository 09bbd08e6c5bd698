"""Drift bookkeeping: per-source policy, accepted mappings, events; accept and reject.

Detection is a pure function (`etl.drift_detection.detect_drift`); deciding what a page does
with its findings is the transform stage's (`etl.pipeline.transform.drift_triage`, in the
read-ahead thread, no database). Saving events and mappings happens here, in the page's
transaction.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from etl.drift_detection import BREAKING, INFO, DriftFinding
from etl.models import DriftEvent, FieldMapping, SourcePolicy
from kasparro.core.errors import ApplicationError


@dataclasses.dataclass
class DriftContext:
    """What a run knows about drift on its source when it starts."""

    policy: str
    mappings: dict[str, str]  # observed name -> schema name
    accepted: set[str]
    rejected: set[str]


@dataclasses.dataclass
class Triage:
    """What one page does about drift."""

    findings: list[DriftFinding]
    auto_mappings: list[DriftFinding]  # applied by the evolve policy on this page
    held: dict[int, str]  # item index -> why it is quarantined
    pause_reason: str = ""


def default_policy(source: str) -> str:
    return settings.ETL_DRIFT_POLICY.get(source, settings.ETL_DRIFT_POLICY_DEFAULT)


def source_policy_get(*, source: str) -> SourcePolicy:
    policy, _ = SourcePolicy.objects.get_or_create(
        source=source, defaults={"drift_policy": default_policy(source)}
    )
    return policy


def drift_context_load(*, source: str) -> DriftContext:
    policy = source_policy_get(source=source)
    mappings = dict(
        FieldMapping.objects.filter(source=source, active=True).values_list(
            "from_field", "to_field"
        )
    )
    statuses = DriftEvent.objects.filter(source=source).exclude(status=DriftEvent.Status.OPEN)
    accepted, rejected = set(), set()
    for fingerprint, status in statuses.values_list("fingerprint", "status"):
        (accepted if status == DriftEvent.Status.ACCEPTED else rejected).add(fingerprint)
    return DriftContext(policy.drift_policy, mappings, accepted, rejected)


def drift_record(*, source: str, run_id, triage: Triage, items: list[Any]) -> int:
    """Save the page's findings (one event per fingerprint) and any evolve mappings.
    Returns the number of findings that count against the run (warning or breaking)."""
    now = timezone.now()
    counted = 0
    auto = {f.fingerprint for f in triage.auto_mappings}
    for finding in triage.findings:
        if finding.severity != INFO:
            counted += 1
        sample_index = min(finding.items) if finding.items else None
        sample = items[sample_index] if sample_index is not None else None
        event, created = DriftEvent.objects.get_or_create(
            source=source,
            fingerprint=finding.fingerprint,
            defaults={
                "kind": finding.kind,
                "fields": list(finding.fields),
                "severity": finding.severity,
                "confidence": finding.confidence,
                "message": finding.message,
                "suggested_from": finding.mapping[0] if finding.mapping else "",
                "suggested_to": finding.mapping[1] if finding.mapping else "",
                "sample": sample,
                "first_seen": now,
                "last_seen": now,
            },
        )
        if not created:
            DriftEvent.objects.filter(pk=event.pk).update(
                occurrences=F("occurrences") + 1,
                last_seen=now,
                message=finding.message,
                confidence=finding.confidence,
            )
        event.runs.add(run_id)
        if finding.fingerprint in auto and event.status == DriftEvent.Status.OPEN:
            _accept(event, mapping=finding.mapping, user=None)
    return counted


def _accept(event: DriftEvent, *, mapping: tuple[str, str] | None, user) -> None:
    now = timezone.now()
    if mapping:
        FieldMapping.objects.update_or_create(
            source=event.source,
            from_field=mapping[0],
            to_field=mapping[1],
            defaults={
                "active": True,
                "drift_event": event,
                "accepted_by": user,
                "accepted_at": now,
            },
        )
    event.status = DriftEvent.Status.ACCEPTED
    event.resolved_by = user
    event.resolved_at = now
    event.save(update_fields=["status", "resolved_by", "resolved_at"])


@transaction.atomic
def drift_accept(
    *, event_id: int, user=None, from_field: str | None = None, to_field: str | None = None
) -> DriftEvent:
    """Accept a drift event: with its suggested mapping, one written by the operator, or none
    (a type change the normalizer can read). Unpauses the source."""
    event = DriftEvent.objects.select_for_update().get(pk=event_id)
    mapping = None
    if from_field or to_field:
        if not (from_field and to_field):
            raise ApplicationError("A mapping needs both the observed field and the schema field.")
        mapping = (from_field.strip(), to_field.strip())
    elif event.suggested_from and event.suggested_to:
        mapping = (event.suggested_from, event.suggested_to)
    elif (
        event.kind == "missing"
        and event.severity == BREAKING
        and not FieldMapping.objects.filter(
            source=event.source, to_field=event.fields[0], active=True
        ).exists()
    ):
        raise ApplicationError(
            f"{event.fields[0]!r} is missing with nothing to map from: write a mapping."
        )
    _accept(event, mapping=mapping, user=user)
    SourcePolicy.objects.filter(source=event.source, paused=True).update(
        paused=False, paused_reason="", paused_at=None
    )
    return event


@transaction.atomic
def drift_reject(*, event_id: int, user=None) -> DriftEvent:
    """The drifted items are bad data: they stay quarantined, now and in later runs."""
    event = DriftEvent.objects.select_for_update().get(pk=event_id)
    event.status = DriftEvent.Status.REJECTED
    event.resolved_by, event.resolved_at = user, timezone.now()
    event.save(update_fields=["status", "resolved_by", "resolved_at"])
    FieldMapping.objects.filter(drift_event=event).update(active=False)
    return event


def source_pause(*, source: str, reason: str) -> None:
    SourcePolicy.objects.filter(source=source).update(
        paused=True, paused_reason=reason[:2000], paused_at=timezone.now()
    )
