"""Celery tasks: thin wrappers around services, taking names and ids, never model instances."""

from __future__ import annotations

from celery import shared_task

from etl.services.ingest import ingest_run


@shared_task(name="etl.ingest", bind=True, acks_late=True, reject_on_worker_lost=True)
def ingest(self, source: str, trigger: str = "beat", parent_run_id: str | None = None) -> dict:
    """Ingest one source. Idempotent: a redelivered task resumes from the checkpoint."""
    run = ingest_run(
        source_name=source,
        trigger=trigger,
        parent_run_id=parent_run_id,
        task_id=self.request.id or "",
    )
    return {"run_id": str(run.id), "source": run.source, "status": run.status}
