"""Read answers cached and tagged by the data version (crypto.response_cache): every change the
API can show changes the next answer and its ETag; a 304 only for an unchanged version; the key
is checked before a cached body is served."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import resolve
from django.utils.http import http_date

from crypto.models import Asset, DataVersion
from crypto.versions import data_version
from etl.models import DriftEvent, QuarantinedRecord
from etl.pipeline.replay import drift_replay, quarantine_replay
from etl.pipeline.run import ingest_run
from etl.services.checkpoints import checkpoint_rewind
from etl.services.drift import drift_accept
from kasparro.core.apikeys.services import apikey_revoke
from runs.services import run_finish, run_start
from tests.etl.test_drift import set_policy
from tests.test_admin import asset_change_post

pytestmark = pytest.mark.django_db

HEADER = "coin_id,symbol,name,price_usd,last_updated\n"


def body(response) -> dict:
    """The answer without its per-response members."""
    data = json.loads(response.content)
    data.pop("request_id", None)
    data.pop("api_latency_ms", None)
    return data


def run(source: str):
    return ingest_run(source_name=source, trigger="cli")


def test_the_same_version_answers_the_same_body_and_etag_and_a_304_for_it(client, loaded):
    first = client.get("/data", {"limit": 5})
    second = client.get("/data", {"limit": 5})  # cached
    assert first.status_code == second.status_code == 200
    assert body(first) == body(second) and len(body(first)["data"]) == 5
    assert first["ETag"] == second["ETag"] and first["ETag"].startswith('"')
    version = data_version()
    assert first["Last-Modified"] == http_date(version.changed_at.timestamp())
    assert first["Cache-Control"] == "no-cache"
    # Per response: the request id and the latency are written fresh in front of the body.
    ids = [json.loads(r.content)["request_id"] for r in (first, second)]
    assert ids[0] != ids[1] and ids[1] == second["X-Request-ID"]
    assert list(json.loads(second.content))[:2] == ["request_id", "api_latency_ms"]

    again = client.get("/data", {"limit": 5}, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == first["ETag"]
    listed = client.get("/data", {"limit": 5}, HTTP_IF_NONE_MATCH=f'"x", {first["ETag"]}')
    assert listed.status_code == 304
    # If-Modified-Since: a 304 only for a date after the version's second (two changes in one
    # second share their Last-Modified).
    modified = version.changed_at.timestamp()
    same_second = client.get("/data", {"limit": 5}, HTTP_IF_MODIFIED_SINCE=http_date(modified))
    assert same_second.status_code == 200
    later = client.get("/data", {"limit": 5}, HTTP_IF_MODIFIED_SINCE=http_date(modified + 1))
    assert later.status_code == 304
    earlier = client.get("/data", {"limit": 5}, HTTP_IF_MODIFIED_SINCE=http_date(modified - 1))
    assert earlier.status_code == 200
    # Other parameters are another answer, and another tag; their order does not matter.
    other = client.get("/data", {"limit": 6})
    assert other["ETag"] != first["ETag"]
    assert (
        client.get("/data?offset=0&limit=6")["ETag"] == client.get("/data?limit=6&offset=0")["ETag"]
    )
    assert client.get("/data", {"limit": 6}, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 200


PER_RESPONSE = re.compile(rb'^\{"request_id":"[0-9a-f]{32}",("api_latency_ms":[0-9.]+,)?')


def test_an_answer_is_byte_for_byte_what_the_view_computes_without_the_cache(
    client, loaded, monkeypatch
):
    paths = [
        "/data?limit=100",
        "/data?source=rss&limit=20",
        "/assets?q=bit",
        "/assets/bitcoin",
        "/assets/bitcoin/history?interval=hour&limit=3",
        "/news?limit=20",
    ]
    for path in paths:
        view = resolve(path.split("?")[0]).func.view_class
        with monkeypatch.context() as patched:  # the view as it was, DRF rendering it
            patched.setattr(view, "get", view.get.__wrapped__)
            plain = client.get(path)
        computed, cached = client.get(path), client.get(path)
        assert plain.status_code == computed.status_code == cached.status_code == 200, path
        assert "ETag" not in plain and "ETag" in cached
        bodies = {PER_RESPONSE.sub(b"{", r.content) for r in (plain, computed, cached)}
        assert len(bodies) == 1, path
        assert all(PER_RESPONSE.match(r.content) for r in (plain, computed, cached)), path
    # The history's next link is kept with its body.
    page = client.get("/assets/bitcoin/history?limit=1")
    assert page["Link"] == client.get("/assets/bitcoin/history?limit=1")["Link"]


def test_a_page_commit_changes_the_next_answer_and_its_etag(client, coingecko, empty_csv_drop):
    run("coingecko")
    before = client.get("/assets/bitcoin/history")
    assert before.status_code == 200 and {p["source"] for p in body(before)["data"]} == {
        "coingecko"
    }
    (empty_csv_drop / "late.csv").write_text(
        HEADER + "bitcoin,btc,Bitcoin,12345,2025-12-20T00:00:00Z\n"
    )
    assert run("csv").items_inserted == 1

    after = client.get("/assets/bitcoin/history", HTTP_IF_NONE_MATCH=before["ETag"])
    assert after.status_code == 200 and after["ETag"] != before["ETag"]
    assert {p["source"] for p in body(after)["data"]} == {"coingecko", "csv"}
    assert (
        client.get("/assets/bitcoin/history", HTTP_IF_NONE_MATCH=after["ETag"]).status_code == 304
    )


def test_a_run_started_and_finished_changes_the_runs_answers(client, auth, loaded):
    listed = client.get("/runs", **auth)
    assert listed["Cache-Control"] == "private, no-cache"
    started = run_start(source="csv", trigger="manual")
    running = client.get("/runs", HTTP_IF_NONE_MATCH=listed["ETag"], **auth)
    assert running.status_code == 200 and body(running)["data"][0]["status"] == "running"
    detail = client.get(f"/runs/{started.pk}", **auth)
    run_finish(run_id=started.pk, status="success")
    finished = client.get(f"/runs/{started.pk}", HTTP_IF_NONE_MATCH=detail["ETag"], **auth)
    assert finished.status_code == 200 and body(finished)["status"] == "success"


def test_a_revoked_key_gets_401_although_the_answer_is_cached(client, api_key, auth, loaded):
    assert client.get("/runs", **auth).status_code == 200
    cached = client.get("/runs", **auth)
    assert cached.status_code == 200
    apikey_revoke(name="tests")
    for headers in ({}, {"HTTP_IF_NONE_MATCH": cached["ETag"]}):
        refused = client.get("/runs", **auth, **headers)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == (
            "authentication_failed"
        )
    assert client.get("/stats", **auth).status_code == 401
    assert client.get("/runs").status_code == 401  # and none without a key


def test_a_drift_replay_changes_the_next_answer(client, feeds, settings):
    set_policy("rss", "freeze")
    settings.RSS_FEED_URLS = [feeds.url("decrypt")]
    feeds.bodies["decrypt"] = (
        feeds.bodies["decrypt"].replace(b"<guid", b"<ignored").replace(b"</guid>", b"</ignored>")
    )
    run("rss")
    empty = client.get("/news")
    assert body(empty)["pagination"]["total_items"] == 0
    event = DriftEvent.objects.get()
    drift_accept(event_id=event.pk)
    drift_replay(event_id=event.pk)
    replayed = client.get("/news", HTTP_IF_NONE_MATCH=empty["ETag"])
    assert replayed.status_code == 200 and body(replayed)["pagination"]["total_items"] == 58


def test_a_quarantine_replay_changes_the_next_answer(client, coingecko, empty_csv_drop):
    (empty_csv_drop / "early.csv").write_text(
        "symbol,name,price_usd,last_updated\nbtc,Bitcoin,12345,2025-12-20T00:00:00Z\n"
    )
    run("csv")  # before CoinGecko: no asset is known to match the symbol and name
    item = QuarantinedRecord.objects.get(reason_code="unknown_asset")
    run("coingecko")
    before = client.get("/assets/bitcoin/history", {"source": "csv"})
    assert body(before)["data"] == []
    assert quarantine_replay(ids=[item.pk])["still_quarantined"] == 0
    after = client.get("/assets/bitcoin/history", {"source": "csv"})
    assert after["ETag"] != before["ETag"]
    assert [p["price_usd"] for p in body(after)["data"]] == [12345.0]


def test_a_checkpoint_rewind_advances_the_version(client, auth, coingecko):
    run("coingecko")
    before = client.get("/runs", **auth)
    checkpoint_rewind(source="coingecko", cursor={})
    assert client.get("/runs", HTTP_IF_NONE_MATCH=before["ETag"], **auth).status_code == 200


def test_an_asset_edited_in_admin_changes_the_next_answer(client, django_user_model, coingecko):
    run("coingecko")
    before = client.get("/assets", {"q": "bitcoin"})
    assert body(before)["data"][0]["name"] == "Bitcoin"
    staff = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw-1234567890")
    client.force_login(staff)
    asset = Asset.objects.get(slug="bitcoin")
    assert asset_change_post(client, asset, name="Bitcoin (renamed)").status_code == 302
    client.logout()
    after = client.get("/assets", {"q": "bitcoin"}, HTTP_IF_NONE_MATCH=before["ETag"])
    assert after.status_code == 200 and body(after)["data"][0]["name"] == "Bitcoin (renamed)"


def test_a_cached_answer_costs_no_query_with_redis_and_one_without(client, loaded, settings):
    """With Redis the version's copy and the answer come in the rate limits' round trip; in
    zero-config (local memory) the version is one query."""
    with_redis = "LOCATION" in settings.CACHES["default"]
    client.get("/data", {"limit": 10})
    with CaptureQueriesContext(connection) as hit:
        tagged = client.get("/data", {"limit": 10})
    assert tagged.status_code == 200
    if with_redis:
        assert len(hit) == 0, hit.captured_queries
    else:
        assert len(hit) == 1 and "crypto_dataversion" in hit[0]["sql"]
    with CaptureQueriesContext(connection) as revalidated:
        assert (
            client.get("/data", {"limit": 10}, HTTP_IF_NONE_MATCH=tagged["ETag"]).status_code == 304
        )
    assert len(revalidated) == len(hit)


def test_the_version_copy_in_redis_follows_the_database(client, coingecko, settings):
    """Published after the commit, never lowered, short-lived: a copy that is gone or wrong
    is replaced from the database."""
    if "LOCATION" not in settings.CACHES["default"]:
        pytest.skip("no Redis cache: REDIS_URL is not set (zero-config reads the database)")
    import redis

    from crypto.versions import VERSION_SECONDS, version_key

    store = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    assert VERSION_SECONDS == 1.0  # the shipped bound on a copy left by a dead process
    run("coingecko")
    first = client.get("/assets")
    number = data_version().number
    assert store.get(version_key()).split(b":")[0] == str(number).encode()
    assert 0 < store.pttl(version_key()) <= 1000
    # A copy that is behind (its publisher died after the commit) lasts at most its life.
    store.set(version_key(), f"{number - 1}:0", px=300)
    stale = client.get("/assets")
    assert stale["ETag"].startswith(f'"{number - 1}.')
    import time

    time.sleep(0.35)
    fresh = client.get("/assets")
    assert fresh["ETag"] == first["ETag"]


def test_errors_and_csv_are_not_cached(client, loaded):
    assert client.get("/data", {"limit": 0}).status_code == 400
    assert client.get("/data", {"limit": 0}).json()["error"]["code"] == "invalid"
    missing = client.get("/assets/nothing-here")
    assert missing.status_code == 404 and "ETag" not in missing
    csv_answer = client.get("/news", {"format": "csv"})
    assert csv_answer.status_code == 200 and "ETag" not in csv_answer


def test_stats_are_cached_for_a_second_without_validators(client, auth, loaded):
    first = client.get("/stats", **auth)
    assert first.status_code == 200 and "ETag" not in first
    assert body(first)["sources"]["coingecko"]["runs"]


def test_an_unreachable_cache_costs_the_caching_not_the_answer(client, loaded):
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    with override_settings(CACHES=unreachable):
        answers = [client.get("/data", {"limit": 3}) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert body(answers[0]) == body(answers[1]) and answers[0]["ETag"] == answers[1]["ETag"]


def test_the_version_row_is_advanced_by_one_per_page(coingecko):
    start = DataVersion.objects.get().number
    first = run("coingecko")
    # Two pages, and the run's start and its end.
    assert DataVersion.objects.get().number == start + first.pages + 2


def test_an_answer_from_a_lagging_replica_is_not_stored_under_the_newer_version(
    client, loaded, settings, monkeypatch
):
    """Reads on a replica that has not yet replayed the version Redis names: the answer is
    served, but not stored under that number (it may hold the older rows)."""
    if "LOCATION" not in settings.CACHES["default"]:
        pytest.skip("no Redis cache: REDIS_URL is not set (zero-config reads the database)")
    import redis

    from crypto import response_cache
    from crypto.versions import Version, version_key

    store = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    current = data_version()
    store.set(version_key(), f"{current.number + 5}:{current.changed_at.timestamp()}", px=5000)
    monkeypatch.setattr(response_cache, "_reads_on", lambda: "replica")
    lagging = Version(current.number, current.changed_at)
    monkeypatch.setattr(response_cache, "data_version", lambda **kwargs: lagging)
    answer = client.get("/assets", {"q": "bit"})
    assert answer.status_code == 200 and body(answer)["data"]
    assert not list(store.scan_iter(f"*:api:{current.number + 5}:*"))
    monkeypatch.undo()  # reads on the primary again: stored
    client.get("/assets", {"q": "bit"})
    assert list(store.scan_iter(f"*:api:{current.number + 5}:*"))


PUBLIC = [
    "/data?limit=10",
    "/data?symbol=BTC",
    "/assets",
    "/assets/bitcoin",
    "/assets/bitcoin/history?source=coingecko",
    "/news?limit=10",
]
PER_REQUEST = {"X-Request-ID", "Date", "Content-Length"}  # the latency's digits vary


def test_a_stored_answer_is_the_same_whether_drf_serves_it_or_not(client, loaded):
    """A public request without credentials, `format` or a particular Accept is answered from
    the store before DRF wraps it (ApiView.dispatch); any other request goes through DRF. Both
    give the same status, headers and body, and the same 304."""
    for path in PUBLIC:
        client.get(path)  # computed and stored
        fast = client.get(path)
        drf = client.get(path, HTTP_ACCEPT="application/json; q=0.9")  # DRF negotiates it
        also_fast = client.get(path, HTTP_ACCEPT="*/*")
        assert fast.status_code == drf.status_code == also_fast.status_code == 200, path
        assert body(fast) == body(drf) == body(also_fast), path
        headers = [
            {k: v for k, v in r.headers.items() if k not in PER_REQUEST}
            for r in (fast, drf, also_fast)
        ]
        assert headers[0] == headers[1] == headers[2], path
        assert headers[0]["Allow"] == "GET, HEAD, OPTIONS", path
        for accept in ({}, {"HTTP_ACCEPT": "application/json; q=0.9"}):
            again = client.get(path, HTTP_IF_NONE_MATCH=fast["ETag"], **accept)
            assert again.status_code == 304 and again.content == b"", path
            assert again["ETag"] == fast["ETag"] and again["Allow"] == headers[0]["Allow"]
        head = client.head(path)
        assert head.status_code == 200 and head["ETag"] == fast["ETag"], path


def test_what_the_store_cannot_answer_goes_through_drf(client, api_key, loaded):
    """CSV, an unknown format, an Accept that is not JSON, a bad key and the token endpoints
    without one are answered as before, although a JSON answer to the same path is stored."""
    path = "/assets/bitcoin/history?source=coingecko"
    client.get(path), client.get("/runs", HTTP_X_API_KEY=api_key)
    csv = client.get(path + "&format=csv")
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    assert client.get(path, HTTP_ACCEPT="text/csv")["Content-Type"].startswith("text/csv")
    assert client.get(path + "&format=xml").status_code == 400
    assert client.get(path, HTTP_ACCEPT="text/html").status_code == 406
    assert client.get(path, HTTP_X_API_KEY="wrong").status_code == 401
    assert client.get("/runs").status_code == 401
    assert client.get("/runs", HTTP_X_API_KEY=api_key).status_code == 200
