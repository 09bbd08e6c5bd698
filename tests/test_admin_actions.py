"""Operators' admin actions end to end: retry a failed run (it resumes from the checkpoint),
run a source now, replay quarantined items once what they lacked exists."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from crypto.models import LatestQuote, Quote
from etl.faults import FaultPlan
from etl.models import Checkpoint, QuarantinedRecord
from etl.pipeline.run import ingest_run
from runs.models import Run
from tests.factories import RunFactory
from tests.support import celery_eager

pytestmark = pytest.mark.django_db


@pytest.fixture
def su_client(client):
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-1234567890")
    client.force_login(user)
    return client


@pytest.fixture
def run_action(su_client, django_capture_on_commit_callbacks):
    """POST an admin action with Celery eager and on-commit callbacks run; return messages."""

    def post(url: str, action: str, objects) -> list[str]:
        with celery_eager(), django_capture_on_commit_callbacks(execute=True):
            response = su_client.post(
                url,
                {"action": action, "_selected_action": [o.pk for o in objects]},
                follow=True,
            )
        assert response.status_code == 200 and response.redirect_chain
        return [str(m) for m in response.context["messages"]]

    return post


def test_retry_resumes_a_failed_run_from_its_checkpoint(coingecko, run_action):
    failed = ingest_run(
        source_name="coingecko",
        trigger="beat",
        faults=FaultPlan.parse("coingecko:load:1@page2"),
    )
    assert failed.status == Run.Status.FAILED and failed.pages == 1
    assert Checkpoint.objects.get(source="coingecko").cursor == {"next_page": 2}
    coingecko.requests.clear()

    notes = run_action("/admin/runs/run/", "retry", [failed])

    assert notes == [
        "Queued 1 retry run(s); they resume from the checkpoint once a worker picks them up."
    ]
    retry = Run.objects.get(trigger=Run.Trigger.RETRY)
    assert retry.parent_id == failed.id
    assert retry.checkpoint_before == {"next_page": 2}
    assert retry.status == Run.Status.SUCCESS and retry.pages == 1
    assert [r.args["page"] for r in coingecko.requests] == ["2"]
    assert Quote.objects.count() == sum(len(page) for page in coingecko.pages)


def test_retry_skips_runs_that_did_not_fail(coingecko, run_action):
    ok = RunFactory(status=Run.Status.SUCCESS)
    running = RunFactory(status=Run.Status.RUNNING, finished_at=None)

    notes = run_action("/admin/runs/run/", "retry", [ok, running])

    assert len(notes) == 2 and all(n.startswith("Skipped: ") for n in notes)
    assert "only failed or partial runs can be retried" in notes[0]
    assert not coingecko.requests
    assert Run.objects.count() == 2


def test_run_now_runs_each_selected_source_once(coingecko, run_action):
    runs = RunFactory.create_batch(3, source="coingecko", status=Run.Status.SUCCESS)

    notes = run_action("/admin/runs/run/", "run_now", runs)

    assert notes == ["Queued a run of coingecko."]
    manual = Run.objects.get(trigger=Run.Trigger.MANUAL)
    assert manual.status == Run.Status.SUCCESS and manual.parent_id is None
    assert LatestQuote.objects.filter(source="coingecko").exists()


def test_replay_loads_items_quarantined_before_their_asset_existed(
    empty_csv_drop, coingecko, run_action
):
    (empty_csv_drop / "prices.csv").write_text("symbol,name,price\nbtc,Bitcoin,87000\n")
    csv_run = ingest_run(source_name="csv", trigger="beat")
    (record,) = QuarantinedRecord.objects.all()
    assert csv_run.status == Run.Status.PARTIAL
    assert record.reason_code == "unknown_asset" and record.status == "open"
    assert not Quote.objects.exists()

    ingest_run(source_name="coingecko", trigger="beat")
    notes = run_action("/admin/etl/quarantinedrecord/", "replay", [record])

    assert notes == [
        "Replay: 1 item(s) now loaded (1 inserted, 0 updated, 0 unchanged); 0 still quarantined."
    ]
    record.refresh_from_db()
    assert record.status == QuarantinedRecord.Status.REPLAYED
    quote = Quote.objects.select_related("asset").get(source="csv")
    assert quote.asset.slug == "bitcoin" and quote.price_usd == 87000

    quotes = Quote.objects.count()
    notes = run_action("/admin/etl/quarantinedrecord/", "replay", [record])
    assert notes == [
        "Replay: 0 item(s) now loaded (0 inserted, 0 updated, 0 unchanged); "
        "0 still quarantined; 1 already replayed."
    ]
    assert Quote.objects.count() == quotes


def test_replay_keeps_items_that_still_fail_with_todays_reason(empty_csv_drop, run_action):
    (empty_csv_drop / "prices.csv").write_text("symbol,name,price\nzzz,Nothing Coin,1\n")
    ingest_run(source_name="csv", trigger="beat")
    record = QuarantinedRecord.objects.get()
    QuarantinedRecord.objects.filter(pk=record.pk).update(reason="stale reason")

    notes = run_action("/admin/etl/quarantinedrecord/", "replay", [record])

    assert "1 still quarantined" in notes[0]
    record.refresh_from_db()
    assert record.status == "open" and record.reason_code == "unknown_asset"
    assert record.reason != "stale reason"
    assert not Quote.objects.exists()
