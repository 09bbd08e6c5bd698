"""`GET /health`: database, broker, and each source's freshness against its schedule.

Database down -> unhealthy (503). Broker down or a source stale (no usable run for two
schedule intervals) -> degraded (200, so a load balancer keeps serving reads). Else healthy.

Cheap enough to poll every second: each answer makes one query (the data version, which also
proves the database is up, so a database that is down is a 503 at once; Django's own check of
the connection is not made on top of it), without DRF's request machinery; the other checks
are held per process for `COMPONENTS_SECONDS` and one data version (`components`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from crypto.versions import data_version
from kasparro.core.catalogue import schedule_name, source_names
from kasparro.core.request_id import get_request_id
from runs.selectors import runs_last_per_source


def broker_ok() -> bool:
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        return folder.is_dir() and os.access(folder, os.W_OK)
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        return bool(client.ping())
    except Exception:  # any failure to reach it means "down", reported, not raised
        return False


@dataclasses.dataclass
class SourceSchedule:
    interval_seconds: float  # between scheduled runs (the shipped default if none is enabled)
    next_run: dt.datetime | None  # when beat next starts it; None when not scheduled


def source_schedules() -> dict[str, SourceSchedule]:
    """Each source's beat schedule, as operators edit it: one query."""
    from django_celery_beat.models import PeriodicTask

    default = settings.ETL_SCHEDULE_MINUTES * 60.0
    names = {schedule_name(s): s for s in source_names()}
    schedules = {s: SourceSchedule(default, None) for s in source_names()}
    for task in PeriodicTask.objects.filter(name__in=names, enabled=True).select_related(
        "interval"
    ):
        if task.interval is not None:
            every = task.interval.schedule.run_every
            schedules[names[task.name]] = SourceSchedule(
                every.total_seconds(), (task.last_run_at or timezone.now()) + every
            )
    return schedules


def schedule_intervals() -> dict[str, float]:
    """Seconds between scheduled runs per source."""
    return {source: s.interval_seconds for source, s in source_schedules().items()}


class HealthComponentSerializer(serializers.Serializer):
    last_run_status = serializers.CharField(allow_null=True)
    last_run_at = serializers.DateTimeField(allow_null=True)
    last_success_at = serializers.DateTimeField(allow_null=True)
    staleness_seconds = serializers.FloatField(allow_null=True)
    schedule_seconds = serializers.FloatField()
    stale = serializers.BooleanField()


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy", "degraded", "unhealthy"])
    database_connected = serializers.BooleanField()
    broker_connected = serializers.BooleanField()
    etl_status = serializers.DictField(child=HealthComponentSerializer())
    reasons = serializers.ListField(child=serializers.CharField())
    timestamp = serializers.DateTimeField()
    request_id = serializers.CharField(allow_null=True)


class HealthApi(APIView):
    """Always answers, always JSON: no authentication, no throttle, no database needed."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        responses={200: HealthSerializer, 503: HealthSerializer},
        examples=[
            OpenApiExample(
                "Healthy",
                value={
                    "status": "healthy",
                    "database_connected": True,
                    "broker_connected": True,
                    "etl_status": {
                        "coingecko": {
                            "last_run_status": "success",
                            "last_run_at": "2025-12-28T06:00:00+00:00",
                            "last_success_at": "2025-12-28T06:00:00+00:00",
                            "staleness_seconds": 1200.0,
                            "schedule_seconds": 3600.0,
                            "stale": False,
                        }
                    },
                    "reasons": [],
                    "timestamp": "2025-12-28T06:20:00+00:00",
                    "request_id": "6f1c0b2a9d8e4f3a8b7c6d5e4f3a2b1c",
                },
                response_only=True,
                status_codes=["200"],
            )
        ],
    )
    def get(self, request):
        body = health_report()
        return Response(body, status=503 if body["status"] == "unhealthy" else 200)

    def dispatch(self, request, *args, **kwargs):
        """GET and HEAD without DRF's request machinery (a load balancer polls this): nothing
        here needs it (no credentials, no throttle, no parameters, JSON whatever is asked),
        and the answer is the one `get` gives, rendered by the same renderer."""
        if request.method not in ("GET", "HEAD"):
            return super().dispatch(request, *args, **kwargs)
        body = health_report()
        answer = HttpResponse(
            JSONRenderer().render(body),
            status=503 if body["status"] == "unhealthy" else 200,
            content_type="application/json",
        )
        self.args, self.kwargs, self.request = args, kwargs, request
        self.headers = self.default_response_headers  # as DRF's dispatch sends them
        return self.finalize_response(request, answer, *args, **kwargs)


# Component checks (the broker, each source's freshness) are kept this long per process, and
# for one data version only: a load balancer polling every second costs one query a poll.
COMPONENTS_SECONDS = 2.0


@dataclasses.dataclass(frozen=True)
class Components:
    version: int
    checked_at: float  # time.monotonic()
    broker_connected: bool
    etl_status: dict
    reasons: list[str]


_components: Components | None = None


def _check_components(version: int) -> Components:
    intervals = schedule_intervals()
    etl_status: dict = {}
    reasons: list[str] = []
    for source, info in runs_last_per_source(sources=source_names()).items():
        run = info["last_run"]
        staleness = info["staleness_seconds"]
        stale = staleness is None or staleness > 2 * intervals[source]
        etl_status[source] = {
            "last_run_status": run.status if run else None,
            "last_run_at": run.started_at.isoformat() if run else None,
            "last_success_at": info["last_success_at"].isoformat()
            if info["last_success_at"]
            else None,
            "staleness_seconds": round(staleness, 1) if staleness is not None else None,
            "schedule_seconds": intervals[source],
            "stale": stale,
        }
        if stale:
            reasons.append(
                f"{source}: no data yet"
                if staleness is None
                else f"{source}: stale ({staleness:.0f}s old)"
            )
    broker = broker_ok()
    if not broker:
        reasons.append("broker unreachable")
    return Components(version, time.monotonic(), broker, etl_status, reasons)


def components(version: int) -> Components:
    """This process's component checks, if made for this data version within
    `COMPONENTS_SECONDS`; else made now. A run's start or end advances the version, so its
    outcome shows at once."""
    global _components
    held = _components
    if (
        held is None
        or held.version != version
        or time.monotonic() - held.checked_at > COMPONENTS_SECONDS
    ):
        held = _components = _check_components(version)
    return held


def _database_version() -> int:
    """The data version, read on the primary: the database check. It is the check Django would
    make before a request's first query on a reused connection (`CONN_HEALTH_CHECKS`, a
    `SELECT 1`), so that one is not made too; a connection that broke since its last use (the
    database restarted) fails this read once, and it is made again on a fresh connection: only
    a database that cannot be reached now is reported down."""
    connection = connections[DEFAULT_DB_ALIAS]
    connection.health_check_done = True
    try:
        return data_version(using=DEFAULT_DB_ALIAS).number
    except DatabaseError:
        if connection.in_atomic_block:
            raise
        connection.close()
        return data_version(using=DEFAULT_DB_ALIAS).number


def health_report() -> dict:
    """One query per answer: the data version, read on the primary, which also proves the
    database is there (down: 503 at once, whatever is held). The rest is `components`."""
    now = timezone.now()
    body: dict = {"status": "healthy", "database_connected": True}
    try:
        held = components(_database_version())
    except DatabaseError:
        body |= {"status": "unhealthy", "database_connected": False}
        body["broker_connected"] = broker_ok()
        reasons = ["database unreachable"] + (
            [] if body["broker_connected"] else ["broker unreachable"]
        )
        body |= {"etl_status": {}, "reasons": reasons}
    else:
        body["broker_connected"] = held.broker_connected
        if held.reasons:
            body["status"] = "degraded"
        body |= {"etl_status": held.etl_status, "reasons": list(held.reasons)}
    body["timestamp"] = now.isoformat()
    body["request_id"] = get_request_id()
    return body
