"""Drift bookkeeping: per-source policy, accepted mappings, events; accept and reject.

Detection itself is pure (`etl.drift.detect_drift`); deciding what a page does with its
findings (`drift_triage`) is pure too, so it runs in the read-ahead thread. Saving events
and mappings happens here, in the page's transaction.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from etl.drift import BREAKING, INFO, Finding, detect_drift
from etl.models import DriftEvent, FieldMapping, SourcePolicy
from etl.sources.base import Source
from kasparro.core.errors import ApplicationError

# The evolve policy applies a suggested mapping by itself from this confidence up.
EVOLVE_MIN_CONFIDENCE = 90
# Items examined per page in sources whose pages are uniform.
DRIFT_SAMPLE = 200


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

    findings: list[Finding]
    auto_mappings: list[Finding]  # applied by the evolve policy on this page
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


def drift_triage(source: Source, items: list[Any], context: DriftContext) -> tuple[list, Triage]:
    """Detect drift on a page and decide, by policy, which items go on and which are held.
    Returns the items with mappings applied (evolve may add some) and the triage."""
    if context.mappings:
        items = [source.apply_mappings(item, context.mappings) for item in items]
    sample = items
    if source.uniform_pages and len(items) > DRIFT_SAMPLE:
        # Every row of a page shares one shape (a CSV page is one file's rows under one
        # header): a spread-out sample finds the same drift at a fraction of the cost.
        step = len(items) / DRIFT_SAMPLE
        sample = [items[int(i * step)] for i in range(DRIFT_SAMPLE)]
    findings = detect_drift(
        source.schema,
        [source.observe(item) for item in sample],
        key_fields=source.key_fields,
        cursor_field=source.cursor_field,
        text_values=source.text_values,
        sparse=source.sparse,
        accepted=context.accepted,
    )
    if sample is not items:
        whole_page = frozenset(range(len(items)))
        findings = [
            dataclasses.replace(f, items=whole_page if f.items else f.items) for f in findings
        ]
    auto = []
    if context.policy == SourcePolicy.Drift.EVOLVE:
        auto = [
            f
            for f in findings
            if f.mapping
            and f.confidence >= EVOLVE_MIN_CONFIDENCE
            and f.fingerprint not in context.rejected
        ]
        if auto:
            context.mappings.update(dict(f.mapping for f in auto))
            context.accepted.update(f.fingerprint for f in auto)
            items = [source.apply_mappings(item, context.mappings) for item in items]
    triage = Triage(findings=findings, auto_mappings=auto, held={})
    auto_fingerprints = {f.fingerprint for f in auto}
    for finding in findings:
        if finding.severity == INFO or finding.fingerprint in auto_fingerprints:
            continue
        hold = (
            context.policy != SourcePolicy.Drift.EVOLVE or finding.fingerprint in context.rejected
        )
        if hold:
            for index in finding.items:
                triage.held.setdefault(index, f"schema drift: {finding.message}")
        if finding.severity == BREAKING and context.policy == SourcePolicy.Drift.PAUSE:
            triage.pause_reason = f"paused by breaking schema drift: {finding.message}"
    return items, triage


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
