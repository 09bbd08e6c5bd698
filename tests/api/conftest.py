from __future__ import annotations

import pytest

from etl.pipeline.run import ingest_run
from kasparro.core.apikeys.services import apikey_create


@pytest.fixture
def loaded(coingecko, csv_drop, feeds):
    """All three sources ingested from the real samples."""
    runs = [ingest_run(source_name=s, trigger="cli") for s in ("coingecko", "csv", "rss")]
    assert [r.status for r in runs] == ["success"] * 3
    return runs


@pytest.fixture
def api_key(db) -> str:
    return apikey_create(name="tests")[1]


@pytest.fixture
def auth(api_key) -> dict:
    return {"HTTP_AUTHORIZATION": f"Token {api_key}"}
