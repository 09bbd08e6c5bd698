"""Enqueue ingestion runs on the worker, after the current transaction commits."""

from __future__ import annotations

from django.db import transaction

from etl.sources import canonical_name, get_source_class


def ingest_enqueue(
    *, source: str, trigger: str = "manual", parent_run_id: str | None = None
) -> None:
    from etl.tasks import ingest

    name = canonical_name(source)
    get_source_class(name)  # unknown names fail here, not on the worker
    kwargs = {"trigger": trigger, "parent_run_id": parent_run_id}
    transaction.on_commit(lambda: ingest.apply_async(args=[name], kwargs=kwargs))
