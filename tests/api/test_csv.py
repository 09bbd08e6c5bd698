"""`?format=csv` on the asset history and the news: spreadsheets get a header row and the same
items as the JSON; errors stay JSON."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

pytestmark = pytest.mark.django_db


def read_csv(response) -> list[dict]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("interval", ["raw", "hour", "day"])
def test_history_as_csv_holds_the_same_points_as_the_json(client, loaded, interval):
    params = {"interval": interval, "limit": 5000}
    points = client.get("/assets/bitcoin/history", params).json()["data"]
    rows = read_csv(client.get("/assets/bitcoin/history", {**params, "format": "csv"}))

    assert len(rows) == len(points) > 0
    assert list(rows[0]) == [
        "source", "time", "price_usd", "price_min", "price_max", "market_cap", "volume_24h",
        "samples",
    ]  # fmt: skip
    for row, point in zip(rows, points, strict=True):
        assert row["source"] == point["source"]
        assert Decimal(row["price_usd"]) == Decimal(str(point["price_usd"]))
        assert "." not in row["price_usd"] or not row["price_usd"].endswith("0")
        assert int(row["samples"]) == point["samples"]
    if interval != "raw":
        assert all(row["price_min"] and row["price_max"] for row in rows)


def test_csv_is_also_chosen_by_the_accept_header(client, loaded):
    rows = read_csv(client.get("/assets/bitcoin/history", HTTP_ACCEPT="text/csv"))
    assert rows


@pytest.mark.parametrize(
    "path",
    ["/assets/bitcoin/history?format=csv&interval=week", "/assets/nope/history?format=csv"],
)
def test_errors_stay_json_when_csv_was_asked_for(client, loaded, path):
    response = client.get(path)
    assert response.status_code in (400, 404)
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["message"]


@pytest.mark.parametrize(("value", "message"), [("", "must not be empty"), ("xml", "one of")])
@pytest.mark.parametrize("path", ["/news", "/assets/bitcoin/history"])
def test_an_empty_or_unknown_format_is_a_400_naming_it(client, loaded, path, value, message):
    response = client.get(path, {"format": value})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["message"].startswith(f"format: {message}")
    assert set(error["details"]) == {"format"}


def test_news_as_csv_lists_the_page_with_its_assets(client, loaded):
    params = {"asset": "bitcoin", "limit": 100}
    articles = client.get("/news", params).json()["data"]
    rows = read_csv(client.get("/news", {**params, "format": "csv"}))

    assert [int(r["id"]) for r in rows] == [a["id"] for a in articles]
    assert all("bitcoin" in row["assets"].split() for row in rows)
    assert rows[0]["title"] == articles[0]["title"]


def test_the_schema_documents_csv_answers(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in ("/assets/{slug}/history", "/news"):
        content = schema["paths"][path]["get"]["responses"]["200"]["content"]
        assert set(content) == {"application/json", "text/csv"}
        names = {p["name"] for p in schema["paths"][path]["get"]["parameters"]}
        assert "format" in names
        # Errors are JSON even when CSV was asked for, and the schema says so.
        for status, response in schema["paths"][path]["get"]["responses"].items():
            if status == "304":  # not modified: no body at all
                assert "content" not in response
            elif status != "200":
                assert set(response["content"]) == {"application/json"}, status
