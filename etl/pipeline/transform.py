"""Transform: a fetched page's items become normalized items ready to load, or bad items with
a reason. Drift triage first (accepted mappings applied, drifted items held back by policy),
then normalization. No database: it runs in the read-ahead thread (etl.pipeline.extract).
Identity resolution needs the database and happens in the quote loader."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from etl.drift_detection import BREAKING, INFO, detect_drift
from etl.exceptions import ItemError
from etl.faults import FaultPlan
from etl.models import SourcePolicy
from etl.pipeline.load import Loader
from etl.pipeline.load.base import Bad, Good
from etl.services.drift import DriftContext, Triage
from etl.services.raw_records import RawPage, raw_page_prepare
from etl.sources.base import Page, Source

# The evolve policy applies a suggested mapping by itself from this confidence up.
EVOLVE_MIN_CONFIDENCE = 90
# Items examined per page in sources whose pages are uniform.
DRIFT_SAMPLE = 200


@dataclasses.dataclass
class PreparedPage:
    """A page ready for process_page: its items split into good and bad, and what the page
    transaction will write besides (the raw page, the cursor after it)."""

    items: list[Any]  # as fetched (or replayed)
    good: Good
    bad: Bad
    triage: Triage | None = None
    extras: Any = None  # the loader's pre_load output
    number: int = 0  # page number within the run (fault injection points)
    page: Page | None = None  # the fetched page: its raw payload is kept, its cursor stored
    raw: RawPage | None = None  # the fetched page hashed and compressed, to be kept
    raw_record_id: int | None = None  # a replayed page's stored raw record


def transform(
    pages: Iterator[tuple[int, Page]],
    source: Source,
    loader: type[Loader],
    plan: FaultPlan,
    drift: DriftContext | None,
) -> Iterator[PreparedPage]:
    """Prepare each fetched page (pure work, so it can run ahead in a helper thread)."""
    try:
        for number, page in pages:
            plan.check(source.name, "normalize", number)
            prepared = transform_items(source, loader, page.items, drift)
            prepared.number, prepared.page = number, page
            if page.items:
                prepared.raw = raw_page_prepare(page.payload, page.raw_body)
            yield prepared
    finally:
        pages.close()


def transform_items(
    source: Source, loader: type[Loader], items: list[Any], drift: DriftContext | None
) -> PreparedPage:
    """Drift triage, then normalization of the items drift does not hold back."""
    mapped, triage = items, None
    if drift is not None and items:
        mapped, triage = drift_triage(source, items, drift)
    held = triage.held if triage else {}
    bad = [(items[index], "schema_drift", reason) for index, reason in sorted(held.items())]
    keep = [index for index in range(len(items)) if index not in held]
    good = []
    results = _normalize_all(source, [mapped[index] for index in keep] if held else mapped)
    for index, (_, result) in zip(keep, results, strict=True):
        if isinstance(result, ItemError):
            bad.append((items[index], result.code, result.reason))
        else:
            good.append((items[index], result))
    return PreparedPage(items, good, bad, triage, loader.pre_load(good))


def _normalize_all(source: Source, items: list[Any]) -> Iterator[tuple[Any, Any]]:
    """Every item comes out, normalized or with an error: a normalizer bug loses nothing."""
    position = 0
    while position < len(items):
        try:
            for item, result in source.normalize_many(items[position:]):
                position += 1
                yield item, result
        except Exception as exc:
            yield items[position], ItemError("normalize_error", f"{type(exc).__name__}: {exc}")
            position += 1


def drift_triage(source: Source, items: list[Any], context: DriftContext) -> tuple[list, Triage]:
    """Detect drift on a page and decide, by policy, which items go on and which are held.
    Returns the items with mappings applied (evolve may add some) and the triage.

    No database, but not pure: under the evolve policy the mappings it applies by itself are
    added to `context`, so the run's later pages (and their triage) use them too."""
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
