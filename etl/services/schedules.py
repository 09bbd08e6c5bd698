"""The beat schedule, created idempotently: one hourly periodic task per source, the reaper
every minute, and the raw-page prune once a day.

Existing entries are never overwritten: once created, operators own them in admin.
"""

from __future__ import annotations

import json

from django.conf import settings

from kasparro.core.catalogue import INGEST_TASK, schedule_name, source_names

REAPER_NAME = "etl.reap"
REAPER_MINUTES = 1  # with the lease, bounds how long a dead run waits for recovery
PRUNE_NAME = "etl.prune"
PRUNE_AT = {"minute": "40", "hour": "3"}  # daily, UTC: a quiet hour


def schedules_ensure() -> list[str]:
    """Create the missing periodic tasks; return the names created."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    interval, _ = IntervalSchedule.objects.get_or_create(
        every=settings.ETL_SCHEDULE_MINUTES, period=IntervalSchedule.MINUTES
    )
    created = []
    for source in source_names():
        _, was_created = PeriodicTask.objects.get_or_create(
            name=schedule_name(source),
            defaults={
                "task": INGEST_TASK,
                "interval": interval,
                "args": json.dumps([source]),
                "kwargs": json.dumps({"trigger": "beat"}),
                "description": f"Ingest {source} every {settings.ETL_SCHEDULE_MINUTES} minutes.",
            },
        )
        if was_created:
            created.append(schedule_name(source))
    every_minute, _ = IntervalSchedule.objects.get_or_create(
        every=REAPER_MINUTES, period=IntervalSchedule.MINUTES
    )
    reaper, was_created = PeriodicTask.objects.get_or_create(
        name=REAPER_NAME,
        defaults={
            "task": REAPER_NAME,
            "interval": every_minute,
            "description": "Fail runs whose process died and queue their recovery.",
        },
    )
    if was_created:
        created.append(REAPER_NAME)
    elif reaper.interval_id is not None and (reaper.interval.every, reaper.interval.period) == (
        5,
        IntervalSchedule.MINUTES,
    ):
        # The earlier shipped default (every 5 minutes) cannot keep the recovery bound of
        # etl/services/reaper.py; an interval an operator chose is left alone.
        PeriodicTask.objects.filter(pk=reaper.pk).update(interval=every_minute)
    daily, _ = CrontabSchedule.objects.get_or_create(
        **PRUNE_AT, day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    _, was_created = PeriodicTask.objects.get_or_create(
        name=PRUNE_NAME,
        defaults={
            "task": PRUNE_NAME,
            "crontab": daily,
            "description": "Delete raw pages older than ETL_RAW_RETENTION_DAYS that no replay "
            "needs.",
        },
    )
    if was_created:
        created.append(PRUNE_NAME)
    return created


def schedules_ensure_on_migrate(sender, using: str = "default", **kwargs) -> None:
    """post_migrate hook: every migrated database gets the schedules."""
    from django.db import connections
    from django_celery_beat.models import PeriodicTask

    if PeriodicTask._meta.db_table not in connections[using].introspection.table_names():
        return
    schedules_ensure()
