"""GET /data, /assets, /assets/{slug}, /assets/{slug}/history, /news."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DataError, InterfaceError, OperationalError

from crypto.models import Article, LatestQuote

pytestmark = pytest.mark.django_db


def test_data_envelope_and_defaults(client, loaded):
    response = client.get("/data")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"request_id", "api_latency_ms", "data", "pagination"}
    assert body["request_id"] == response["X-Request-ID"]
    assert isinstance(body["api_latency_ms"], float)
    total = LatestQuote.objects.count()
    assert body["pagination"] == {
        "limit": 10,
        "offset": 0,
        "total_items": total,
        "total_pages": -(-total // 10),
    }
    assert len(body["data"]) == 10
    first = body["data"][0]
    assert set(first) == {
        "id",
        "source",
        "symbol",
        "name",
        "slug",
        "current_price",
        "market_cap",
        "volume_24h",
        "price_change_24h",
        "market_cap_rank",
        "last_updated",
    }
    assert (first["slug"], first["symbol"], first["market_cap_rank"]) == ("bitcoin", "BTC", 1)


def test_data_filters_by_source_symbol_and_name(client, loaded):
    btc = client.get("/data", {"source": "coingecko", "symbol": "btc"}).json()["data"]
    assert len(btc) == 1
    assert btc[0]["current_price"] == 87645.0
    assert btc[0]["last_updated"] == "2025-12-28T05:56:13.703000Z"
    assert btc[0]["price_change_24h"] == pytest.approx(-2.11401)

    sol = client.get("/data", {"source": "coingecko", "symbol": "SOL"}).json()["data"]
    assert {row["slug"] for row in sol} == {"solana", "wrapped-solana"}

    csv = client.get("/data", {"source": "csv", "name": "bitcoin", "limit": 100}).json()
    assert {row["slug"] for row in csv["data"]} >= {"bitcoin"}
    assert all("bitcoin" in row["name"].lower() for row in csv["data"])


def test_data_pages_through_everything(client, loaded):
    seen = []
    offset = 0
    while True:
        body = client.get("/data", {"limit": 100, "offset": offset}).json()
        seen += [(row["slug"], row["source"]) for row in body["data"]]
        offset += 100
        if offset >= body["pagination"]["total_items"]:
            break
    assert len(seen) == len(set(seen)) == LatestQuote.objects.count()


@pytest.mark.parametrize("source", ["rss", "rss_feed"])
def test_data_lists_articles_for_rss(client, loaded, source):
    body = client.get("/data", {"source": source, "limit": 5}).json()
    assert body["pagination"]["total_items"] == Article.objects.count() == 113
    article = body["data"][0]
    assert article["source"] == "rss"
    assert {"title", "url", "published_at", "assets", "feed"} <= set(article)
    assert "current_price" not in article


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"source": "nasdaq"}, "source"),
    ],
)
def test_data_rejects_bad_parameters_naming_them(client, params, field):
    response = client.get("/data", params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"]["status"] == 400
    assert body["error"]["message"].startswith(f"{field}:")
    assert field in body["error"]["details"]
    assert body["request_id"]


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/data", "source"),
        ("/data", "symbol"),
        ("/data", "limit"),
        ("/news", "q"),
        ("/news", "since"),
        ("/assets", "symbol"),
        ("/assets/bitcoin/history", "interval"),
        ("/assets/bitcoin/history", "end"),
    ],
)
def test_an_empty_parameter_is_a_400_naming_it(client, db, path, parameter):
    """The schema says a parameter has at least one character or is left out: an empty one is
    not read as "absent" (DRF's reading of form input), it is refused."""
    response = client.get(f"{path}?{parameter}=")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (
        error["message"]
        == f"{parameter}: must not be empty: leave the parameter out to leave it unset."
    )
    assert set(error["details"]) == {parameter}


def test_text_filters_ignore_surrounding_blanks_and_refuse_nul(client, loaded):
    everything = client.get("/data").json()["pagination"]["total_items"]
    assert client.get("/data", {"symbol": "  "}).json()["pagination"]["total_items"] == everything
    padded = client.get("/data", {"source": "coingecko", "symbol": " btc "}).json()["data"]
    assert [item["slug"] for item in padded] == ["bitcoin"]
    response = client.get("/news", {"q": "bit\x00coin"})
    assert response.status_code == 400 and "q" in response.json()["error"]["details"]


def test_source_names_are_the_schema_enum_spelled_as_listed(client, loaded):
    """`source` takes the names the schema lists (aliases included), exactly as listed."""
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    (source,) = (p for p in schema["paths"]["/data"]["get"]["parameters"] if p["name"] == "source")
    assert source["schema"]["enum"] == ["coingecko", "rss", "csv", "rss_feed"]
    for name in source["schema"]["enum"]:
        assert client.get("/data", {"source": name}).status_code == 200, name
    assert client.get("/data", {"source": "CoinGecko"}).status_code == 400


def test_data_makes_the_same_number_of_queries_whatever_the_page(
    client, loaded, django_assert_num_queries
):
    client.get("/data", {"limit": 2})  # warm up (sessions, content types); not the pages read
    for source in ({}, {"source": "rss"}):
        counts = []
        for limit in (1, 100):
            from django.db import connection
            from django.test.utils import CaptureQueriesContext

            with CaptureQueriesContext(connection) as ctx:
                assert client.get("/data", {"limit": limit, **source}).status_code == 200
            counts.append(len(ctx))
        # The data version, the count, the page (and its mentions, for news).
        assert counts[0] == counts[1] <= 4, (source, counts)


@pytest.mark.parametrize(
    "error, status, code",
    [
        (OperationalError("connection refused"), 503, "database_unavailable"),
        (InterfaceError("connection already closed"), 503, "database_unavailable"),
        # A value the database refuses is the client's input, not an outage.
        (DataError("value out of range"), 400, "invalid"),
    ],
)
def test_database_errors_map_to_json_answers(client, monkeypatch, error, status, code):
    def boom(**kwargs):
        raise error

    monkeypatch.setattr("crypto.api.latest_quote_list", boom)
    response = client.get("/data")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_wrong_method_is_a_405_json(client):
    response = client.post("/data", {})
    assert response.status_code == 405
    assert response.json()["error"]["status"] == 405


def test_request_id_is_taken_from_the_caller(client):
    response = client.get("/data", HTTP_X_REQUEST_ID="req-42")
    assert response["X-Request-ID"] == "req-42"
    assert response.json()["request_id"] == "req-42"


def test_throttled_client_gets_429_with_retry_after(client, settings):
    settings.API_RATE_PER_ADDRESS = "3/min"
    codes = [client.get("/assets").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = client.get("/assets")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert response.json()["error"]["code"] == "throttled"


def test_assets_are_found_by_name_and_by_symbol_lookalikes_included(client, loaded):
    body = client.get("/assets", {"q": "sol"}).json()
    slugs = {a["slug"] for a in body["data"]}
    assert {"solana", "wrapped-solana"} <= slugs
    assert client.get("/assets", {"symbol": "usdc"}).json()["pagination"]["total_items"] == 2


def test_asset_detail_has_identities_and_latest_quotes(client, loaded):
    body = client.get("/assets/bitcoin").json()
    assert body["symbol"] == "BTC"
    assert {(i["source"], i["match_method"]) for i in body["identities"]} == {
        ("coingecko", "authoritative"),
        ("csv", "coingecko_id"),
        ("csv", "symbol_name"),
    }
    assert {q["source"] for q in body["latest"]} == {"coingecko", "csv"}


def test_unknown_asset_is_a_404_json(client, db):
    response = client.get("/assets/not-a-coin")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "No asset with slug 'not-a-coin'."


def test_history_raw_and_bucketed(client, loaded, coingecko):
    from etl.pipeline.run import ingest_run

    page = coingecko.pages[0]
    for hour, price in ((6, 88000), (6.5, 89000), (7, 90000)):
        minutes = int(hour * 60)
        page[0] = {
            **page[0],
            "current_price": price,
            "last_updated": f"2025-12-28T{minutes // 60:02d}:{minutes % 60:02d}:00Z",
        }
        ingest_run(source_name="coingecko", trigger="cli")

    raw = client.get("/assets/bitcoin/history", {"source": "coingecko"}).json()
    assert [p["price_usd"] for p in raw["data"]] == [90000, 89000, 88000, 87645]

    hourly = client.get(
        "/assets/bitcoin/history", {"source": "coingecko", "interval": "hour"}
    ).json()["data"]
    assert [(p["time"][:13], p["samples"]) for p in hourly] == [
        ("2025-12-28T07", 1),
        ("2025-12-28T06", 2),
        ("2025-12-28T05", 1),
    ]
    assert hourly[1]["price_usd"] == 88500 and hourly[1]["price_max"] == 89000

    window = client.get(
        "/assets/bitcoin/history",
        {
            "source": "coingecko",
            "start": "2025-12-28T06:00:00Z",
            "end": "2025-12-28T07:00:00Z",
        },
    ).json()["data"]
    assert [Decimal(str(p["price_usd"])) for p in window] == [89000, 88000]
    # [start, end) with end at or before start is an empty range, not an error.
    inverted = client.get(
        "/assets/bitcoin/history",
        {"start": "2025-12-28T07:00:00Z", "end": "2025-12-28T06:00:00Z"},
    )
    assert inverted.status_code == 200 and inverted.json()["data"] == []

    daily = client.get("/assets/bitcoin/history", {"interval": "day"}).json()["data"]
    # CoinGecko's four quotes share a day; the CSV's two come from different days (the
    # top-100 export's timestamps, and the quirky file's own date).
    assert sorted((p["source"], p["samples"]) for p in daily) == [
        ("coingecko", 4),
        ("csv", 1),
        ("csv", 1),
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"interval": "week"}, "interval"),
        ({"start": "yesterday"}, "start"),
        ({"source": "rss"}, "source"),
        ({"source": "rss_feed"}, "source"),
        ({"limit": 0}, "limit"),
    ],
)
def test_history_rejects_bad_parameters(client, loaded, params, field):
    response = client.get("/assets/bitcoin/history", params)
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]


def test_news_is_newest_first_and_filters_by_asset_time_and_text(client, loaded):
    everything = client.get("/news", {"limit": 100}).json()
    assert everything["pagination"]["total_items"] == 113
    times = [a["published_at"] for a in everything["data"]]
    assert times == sorted(times, reverse=True)

    btc = client.get("/news", {"asset": "bitcoin", "limit": 100}).json()
    assert 0 < btc["pagination"]["total_items"] < 113
    assert all("bitcoin" in {m["slug"] for m in a["assets"]} for a in btc["data"])

    recent = client.get("/news", {"since": "2025-12-12T00:00:00Z", "limit": 100}).json()
    assert all(a["published_at"] >= "2025-12-12" for a in recent["data"])

    text = client.get("/news", {"q": "tether"}).json()
    assert text["pagination"]["total_items"] >= 1
    assert client.get("/news", {"since": "soon"}).status_code == 400
