"""Schema drift: detection on real and drifted payloads, policies, review in admin, replay."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth import get_user_model

from crypto.models import Article, Quote
from etl.drift_detection import BREAKING, INFO, WARNING, detect_drift
from etl.models import DriftEvent, FieldMapping, QuarantinedRecord, SourcePolicy
from etl.pipeline.replay import drift_replay
from etl.pipeline.run import ingest_run
from etl.services.drift import drift_accept, drift_reject
from etl.sources.coingecko import CoinGeckoSource
from etl.sources.csv import CsvSource
from etl.sources.rss import RssSource
from runs.models import Run
from tests.conftest import FIXTURES, coingecko_pages
from tests.support import celery_eager

CG = CoinGeckoSource(base_url="http://x", api_key="", pages=1, per_page=1)
RSS = RssSource(feed_urls=["http://x"])
CSV = CsvSource(drop_dir="/tmp", page_rows=10)


def detect(source, items, **kwargs):
    return detect_drift(
        source.schema,
        [source.observe(i) for i in items],
        key_fields=source.key_fields,
        cursor_field=source.cursor_field,
        text_values=source.text_values,
        sparse=source.sparse,
        **kwargs,
    )


def drifted_coingecko(items: list[dict]) -> list[dict]:
    """current_price -> price, total_volume -> volume_total, last_updated -> epoch ms."""
    import datetime as dt

    out = []
    for item in items:
        item = dict(item)
        item["price"] = item.pop("current_price")
        item["volume_total"] = item.pop("total_volume")
        stamp = dt.datetime.fromisoformat(item["last_updated"])
        item["last_updated"] = int(stamp.timestamp() * 1000)
        out.append(item)
    return out


def csv_items(path) -> list[dict]:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    return [
        {"file": path.name, "row": i, "header": rows[0], "values": r, "mtime": "2025-12-28T00:00Z"}
        for i, r in enumerate(rows[1:], 1)
    ]


# --- Detection ----------------------------------------------------------------------------------


def test_real_samples_produce_no_drift():
    for page in coingecko_pages():
        assert detect(CG, page) == []
    for path in sorted((FIXTURES / "rss").glob("*.rss")):
        entries = RSS._parse("http://feed", path.read_bytes())
        assert detect(RSS, entries) == [], path.name
    for path in sorted((FIXTURES / "csv").glob("*.csv")):
        assert detect(CSV, csv_items(path)) == [], path.name


def test_renames_and_type_changes_are_found_with_confidence_and_severity():
    findings = {f.fingerprint: f for f in detect(CG, drifted_coingecko(coingecko_pages()[0]))}
    assert set(findings) == {
        "renamed:current_price>price",
        "renamed:total_volume>volume_total",
        "type_changed:last_updated>number",
    }
    price = findings["renamed:current_price>price"]
    assert price.mapping == ("price", "current_price")
    assert price.severity == WARNING and price.confidence >= 90
    assert len(price.items) == 50
    assert findings["type_changed:last_updated>number"].severity == WARNING
    assert "still readable" in findings["type_changed:last_updated>number"].message


def test_missing_key_without_a_mapping_is_breaking_and_new_fields_are_info():
    items = [
        {k: v for k, v in i.items() if k != "id"} | {"listing": "x"} for i in coingecko_pages()[0]
    ]
    findings = {f.fingerprint: f for f in detect(CG, items)}
    assert findings["missing:id"].severity == BREAKING
    assert findings["added:listing"].severity == INFO


def test_rss_items_that_lost_their_guid_can_be_keyed_by_link():
    entries = RSS._parse("http://feed", (FIXTURES / "rss" / "decrypt.rss").read_bytes())
    (finding,) = detect(RSS, [e | {"id": ""} for e in entries])
    assert finding.fingerprint == "missing:id"
    assert finding.mapping == ("link", "id") and finding.severity == WARNING


def test_renamed_csv_headers_are_found():
    items = [
        {
            "file": "f.csv",
            "row": 1,
            "header": ["coin_id", "name", "priceUSD", "updatedAt"],
            "values": ["bitcoin", "Bitcoin", "87000", "2025-12-28T00:00:00Z"],
            "mtime": "x",
        }
    ]
    findings = {f.fingerprint: f for f in detect(CSV, items)}
    assert findings["renamed:price_usd>priceusd"].mapping == ("priceusd", "price_usd")
    assert findings["renamed:observed_at>updatedat"].mapping == ("updatedat", "observed_at")


def test_one_bad_item_is_not_drift():
    page = coingecko_pages()[0]
    page[3] = {k: v for k, v in page[3].items() if k != "current_price"}
    assert detect(CG, page) == []


def test_accepted_findings_are_not_reported_again():
    drifted = drifted_coingecko(coingecko_pages()[0])
    accepted = {"renamed:current_price>price", "type_changed:last_updated>number"}
    assert [f.fingerprint for f in detect(CG, drifted, accepted=accepted)] == [
        "renamed:total_volume>volume_total"
    ]


# --- Policies and the operator's review ---------------------------------------------------------


def set_policy(source: str, policy: str) -> None:
    SourcePolicy.objects.update_or_create(source=source, defaults={"drift_policy": policy})


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-1234567890")
    client.force_login(user)
    return client


def admin_action(client, action: str, events, django_capture_on_commit_callbacks):
    with celery_eager(), django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/etl/driftevent/",
            {"action": action, "_selected_action": [e.pk for e in events]},
            follow=True,
        )
    assert response.status_code == 200
    return response


@pytest.mark.django_db
def test_coingecko_drift_frozen_then_accepted_in_admin_and_replayed(
    coingecko, staff_client, django_capture_on_commit_callbacks
):
    set_policy("coingecko", "freeze")
    expected = sorted((i["id"], i["current_price"]) for p in coingecko.pages for i in p)
    coingecko.pages = [drifted_coingecko(p) for p in coingecko.pages]

    run = ingest_run(source_name="coingecko", trigger="cli")
    assert run.status == "partial" and run.items_quarantined == 100
    assert run.drift_findings == 6  # three findings on each of two pages
    assert Quote.objects.count() == 0
    assert set(QuarantinedRecord.objects.values_list("reason_code", flat=True)) == {"schema_drift"}
    events = list(DriftEvent.objects.order_by("fingerprint"))
    assert [e.status for e in events] == ["open"] * 3
    assert all(e.occurrences == 2 for e in events)  # one event per drift, seen on two pages
    assert events[0].sample["id"] == "bitcoin"

    page = staff_client.get("/admin/etl/driftevent/")
    assert page.status_code == 200 and b"current_price" in page.content
    assert staff_client.get(f"/admin/etl/driftevent/{events[0].pk}/change/").status_code == 200

    admin_action(staff_client, "accept_and_replay", events, django_capture_on_commit_callbacks)
    assert set(DriftEvent.objects.values_list("status", flat=True)) == {"accepted"}
    assert FieldMapping.objects.filter(source="coingecko").count() == 2
    assert FieldMapping.objects.get(to_field="current_price").accepted_by.username == "ops"
    landed = sorted(
        (q.asset.slug, float(q.price_usd)) for q in Quote.objects.select_related("asset")
    )
    assert landed == [(slug, float(price)) for slug, price in expected]  # exactly once
    replay = DriftEvent.objects.get(fingerprint="renamed:current_price>price").replay_run
    assert replay.trigger == "replay" and replay.parent_id == run.id
    assert not QuarantinedRecord.objects.filter(status="open").exists()

    # Later runs read the new shape with no drift, and a second replay changes nothing.
    again = ingest_run(source_name="coingecko", trigger="cli")
    assert (again.status, again.items_quarantined, again.drift_findings) == ("success", 0, 0)
    second = drift_replay(event_id=events[0].pk)
    assert second.items_inserted == 0 and Quote.objects.count() == 100


@pytest.mark.django_db
def test_rss_feed_that_lost_guids_frozen_then_replayed_exactly_once(feeds, settings):
    set_policy("rss", "freeze")
    settings.RSS_FEED_URLS = [feeds.url("decrypt")]
    feeds.bodies["decrypt"] = (
        feeds.bodies["decrypt"].replace(b"<guid", b"<ignored").replace(b"</guid>", b"</ignored>")
    )
    run = ingest_run(source_name="rss", trigger="cli")
    assert run.items_quarantined == 58 and Article.objects.count() == 0
    event = DriftEvent.objects.get()
    assert event.fingerprint == "missing:id" and event.suggested_from == "link"

    drift_accept(event_id=event.pk)
    replay = drift_replay(event_id=event.pk)
    assert replay.items_inserted == 58 and Article.objects.count() == 58
    assert drift_replay(event_id=event.pk).items_inserted == 0
    assert Article.objects.count() == 58
    assert all(a.guid.startswith("https://decrypt.co/") for a in Article.objects.all())


@pytest.mark.django_db
def test_csv_with_renamed_headers_frozen_then_replayed(empty_csv_drop, coingecko):
    ingest_run(source_name="coingecko", trigger="cli")
    set_policy("csv", "freeze")
    (empty_csv_drop / "renamed.csv").write_text(
        "coin_id,name,priceUSD,updatedAt\n"
        "bitcoin,Bitcoin,87000,2025-12-28T01:00:00Z\n"
        "ethereum,Ethereum,2900,2025-12-28T01:00:00Z\n"
    )
    run = ingest_run(source_name="csv", trigger="cli")
    assert run.items_quarantined == 2 and not Quote.objects.filter(source="csv").exists()
    for event in DriftEvent.objects.filter(source="csv"):
        drift_accept(event_id=event.pk)
    drift_replay(event_id=DriftEvent.objects.filter(source="csv").first().pk)
    assert sorted(Quote.objects.filter(source="csv").values_list("asset__slug", "price_usd")) == [
        ("bitcoin", 87000),
        ("ethereum", 2900),
    ]
    assert (
        drift_replay(event_id=DriftEvent.objects.filter(source="csv").first().pk).items_inserted
        == 0
    )


@pytest.mark.django_db
def test_evolve_applies_confident_renames_in_the_same_run(coingecko):
    set_policy("coingecko", "evolve")
    coingecko.pages = [drifted_coingecko(p) for p in coingecko.pages]
    run = ingest_run(source_name="coingecko", trigger="cli")
    assert run.status == "success" and run.items_inserted == 100
    assert Quote.objects.get(asset__slug="bitcoin").volume_24h is not None
    mapping = FieldMapping.objects.get(to_field="current_price")
    assert mapping.accepted_by is None and mapping.drift_event.status == "accepted"
    # The type change needs no mapping: readable, reported, not held.
    assert DriftEvent.objects.get(kind="type_changed").status == "open"


@pytest.mark.django_db
def test_pause_stops_the_source_until_an_operator_acts(coingecko):
    set_policy("coingecko", "pause")
    for page in coingecko.pages:
        for item in page:
            item.pop("id")
    run = ingest_run(source_name="coingecko", trigger="cli")
    assert run.status == "failed" and run.error_class == "etl.exceptions.SourcePaused"
    assert SourcePolicy.objects.get(source="coingecko").paused
    skipped = ingest_run(source_name="coingecko", trigger="cli")
    assert skipped.status == "skipped" and "paused" in skipped.error_message

    drift_reject(event_id=DriftEvent.objects.get(fingerprint="missing:id").pk)
    SourcePolicy.objects.filter(source="coingecko").update(paused=False, drift_policy="freeze")
    after = ingest_run(source_name="coingecko", trigger="cli")
    # It resumes after the page committed before the pause; rejected drift stays held.
    assert after.checkpoint_before == {"next_page": 2}
    assert after.status == "partial" and after.items_quarantined == 50


@pytest.mark.django_db
def test_drift_counts_show_in_run_detail_and_stats(coingecko, client):
    from kasparro.core.apikeys.services import apikey_create

    set_policy("coingecko", "freeze")
    coingecko.pages = [drifted_coingecko(p) for p in coingecko.pages]
    run = ingest_run(source_name="coingecko", trigger="cli")
    _, key = apikey_create(name="k")
    detail = client.get(f"/runs/{run.id}", HTTP_X_API_KEY=key).json()
    assert detail["drift_findings"] == 6
    stats = client.get("/stats", HTTP_X_API_KEY=key).json()
    assert stats["sources"]["coingecko"]["drift_findings"] == 6
    assert Run.objects.get(pk=run.id).drift_events.count() == 3
    assert json.dumps(detail)  # serialisable


def test_big_uniform_pages_are_checked_on_a_sample_and_held_whole():
    from etl.pipeline.transform import DRIFT_SAMPLE, drift_triage
    from etl.services.drift import DriftContext

    rows = [
        {
            "file": "f.csv",
            "row": i,
            "header": ["coin_id", "name", "priceUSD"],
            "values": [f"coin-{i}", f"Coin {i}", "1.5"],
            "mtime": "2025-12-28T00:00:00Z",
        }
        for i in range(DRIFT_SAMPLE * 3)
    ]
    _, triage = drift_triage(CSV, rows, DriftContext("freeze", {}, set(), set()))
    assert [f.fingerprint for f in triage.findings] == ["renamed:price_usd>priceusd"]
    assert len(triage.held) == len(rows)
