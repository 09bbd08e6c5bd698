"""Management commands, schedules, API keys, health and JSON errors."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from etl.services.schedules import schedules_ensure
from kasparro.core.apikeys.models import APIKey
from kasparro.core.apikeys.services import apikey_create, apikey_verify
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db


def command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_hourly_schedules_exist_after_migrate_and_are_never_overwritten():
    tasks = PeriodicTask.objects.filter(task="etl.ingest").order_by("name")
    assert [t.name for t in tasks] == ["etl.ingest:coingecko", "etl.ingest:csv", "etl.ingest:rss"]
    assert all(t.interval.every == 60 and t.interval.period == "minutes" for t in tasks)
    assert json.loads(tasks[0].args) == ["coingecko"]

    edited = tasks[0]
    edited.enabled = False
    edited.save()
    assert schedules_ensure() == []
    assert PeriodicTask.objects.filter(task="etl.ingest").count() == 3
    assert not PeriodicTask.objects.get(pk=edited.pk).enabled

    PeriodicTask.objects.filter(name="etl.ingest:rss").delete()
    assert schedules_ensure() == ["etl.ingest:rss"]
    reaper = PeriodicTask.objects.get(name="etl.reap")
    assert (reaper.interval.every, reaper.interval.period) == (1, "minutes")


def test_the_reaper_schedule_of_earlier_releases_is_tightened_but_an_operators_is_kept():
    """Every 5 minutes (the earlier default) cannot keep the recovery bound: it becomes every
    minute. An interval an operator chose stays."""
    reaper = PeriodicTask.objects.get(name="etl.reap")
    five, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.filter(pk=reaper.pk).update(interval=five)
    schedules_ensure()
    assert PeriodicTask.objects.get(pk=reaper.pk).interval.every == 1

    thirty, _ = IntervalSchedule.objects.get_or_create(every=30, period="seconds")
    PeriodicTask.objects.filter(pk=reaper.pk).update(interval=thirty)
    schedules_ensure()
    assert PeriodicTask.objects.get(pk=reaper.pk).interval == thirty


def test_apikey_create_prints_once_and_stores_only_a_hash():
    raw = command("apikey", "create", "analyst").strip()
    key = APIKey.objects.get(name="analyst")
    assert raw.startswith("kas_") and raw not in key.hashed_key
    assert len(key.hashed_key) == 64
    assert apikey_verify(raw_key=raw) == key
    assert apikey_verify(raw_key=raw + "x") is None
    assert apikey_verify(raw_key="garbage") is None
    listing = command("apikey", "list")
    assert "analyst" in listing and raw not in listing

    command("apikey", "revoke", "analyst")
    assert apikey_verify(raw_key=raw) is None
    with pytest.raises(CommandError, match="already exists"):
        command("apikey", "create", "analyst")
    with pytest.raises(CommandError, match="No API key named"):
        command("apikey", "revoke", "nobody")


def test_every_generated_key_verifies():
    """Regression: keys whose secret part contained '_' were refused."""
    raws = [apikey_create(name=f"k{i}")[1] for i in range(40)]
    assert any(raw.count("_") > 2 for raw in raws)
    assert all(apikey_verify(raw_key=raw) is not None for raw in raws)


def test_expired_key_is_refused():
    _key, raw = apikey_create(name="temp", expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert apikey_verify(raw_key=raw) is None


def test_bootstrap_prints_working_credentials(client):
    out = command("bootstrap", "--port", "8000")
    password = out.split("password: ")[1].split()[0]
    raw = out.split("API key   ")[1].split()[0]
    assert "Dashboard http://127.0.0.1:8000/\n" in out
    assert client.login(username="admin", password=password)
    assert apikey_verify(raw_key=raw) is not None
    # Running it again issues a new key and retires the old one.
    out2 = command("bootstrap")
    assert apikey_verify(raw_key=raw) is None
    assert apikey_verify(raw_key=out2.split("API key   ")[1].split()[0]) is not None


def test_admin_shows_runs_to_staff(client, django_user_model):
    RunFactory(source="csv", trigger="cli", status="success", started_at=timezone.now())
    staff = django_user_model.objects.create_user(
        "ops", password="pw-12345678", is_staff=True, is_superuser=True
    )
    client.force_login(staff)
    page = client.get("/admin/runs/run/")
    assert page.status_code == 200
    assert b"csv" in page.content


def test_health_reports_sources_and_degrades_when_stale(client):
    body = client.get("/health").json()
    assert body["status"] == "degraded"
    assert body["database_connected"] is True
    assert body["broker_connected"] in (True, False)
    assert set(body["etl_status"]) == {"coingecko", "rss", "csv"}
    assert "coingecko: no data yet" in body["reasons"]
    assert body["request_id"]

    now = timezone.now()
    for source in ("coingecko", "rss", "csv"):
        RunFactory(source=source, trigger="beat", status="success", started_at=now, finished_at=now)
    fresh = client.get("/health")
    assert fresh.status_code == 200
    assert all(not s["stale"] for s in fresh.json()["etl_status"].values())


def test_unknown_path_is_a_json_404_with_request_id(client):
    response = client.get("/nope", HTTP_X_REQUEST_ID="abc-123")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"
    assert response.json()["request_id"] == "abc-123"
    assert response["X-Request-ID"] == "abc-123"


def test_a_plugin_that_disagrees_with_the_catalogue_fails_the_startup_check(monkeypatch):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    from etl.sources import REGISTRY

    call_command("check")  # as shipped: every plug-in agrees with its catalogue line
    monkeypatch.setattr(REGISTRY["csv"], "kind", "news")
    with pytest.raises(SystemCheckError, match=r"etl.E001.*CsvSource"):
        call_command("check")
