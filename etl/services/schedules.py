"""The hourly beat schedule, one periodic task per source, created idempotently.

Existing entries are never overwritten: once created, operators own them in admin.
"""

from __future__ import annotations

import json

from django.conf import settings

from etl.sources import source_names

TASK_NAME = "etl.ingest"
REAPER_NAME = "etl.reap"


def schedule_name(source: str) -> str:
    return f"etl.ingest:{source}"


def schedules_ensure() -> list[str]:
    """Create the missing periodic tasks; return the names created."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    interval, _ = IntervalSchedule.objects.get_or_create(
        every=settings.ETL_SCHEDULE_MINUTES, period=IntervalSchedule.MINUTES
    )
    created = []
    for source in source_names():
        _, was_created = PeriodicTask.objects.get_or_create(
            name=schedule_name(source),
            defaults={
                "task": TASK_NAME,
                "interval": interval,
                "args": json.dumps([source]),
                "kwargs": json.dumps({"trigger": "beat"}),
                "description": f"Ingest {source} every {settings.ETL_SCHEDULE_MINUTES} minutes.",
            },
        )
        if was_created:
            created.append(schedule_name(source))
    every_five, _ = IntervalSchedule.objects.get_or_create(every=5, period=IntervalSchedule.MINUTES)
    _, was_created = PeriodicTask.objects.get_or_create(
        name=REAPER_NAME,
        defaults={
            "task": "etl.reap",
            "interval": every_five,
            "description": "Fail runs whose worker died (lease expired), so they can be retried.",
        },
    )
    if was_created:
        created.append(REAPER_NAME)
    return created


def schedules_ensure_on_migrate(sender, using: str = "default", **kwargs) -> None:
    """post_migrate hook: every migrated database gets the schedules."""
    from django.db import connections
    from django_celery_beat.models import PeriodicTask

    if PeriodicTask._meta.db_table not in connections[using].introspection.table_names():
        return
    schedules_ensure()
