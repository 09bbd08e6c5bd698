"""Run by tests/test_replica.py in a process whose settings have DATABASE_REPLICA_URL: the
replica is Django's test mirror of the test database, so it holds the same rows and only
the router decides which connection a query takes."""

from __future__ import annotations

import re

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from crypto.models import Quote
from kasparro.core.apikeys.models import APIKey
from kasparro.core.db_router import REPLICA, replica_reads

pytestmark = pytest.mark.django_db(databases=["default", REPLICA], transaction=True)


def tables(captured) -> set[str]:
    """The tables the captured queries read, quoted (the ORM's) or not (statements of ours)."""
    tables = ("crypto_latestquote", "crypto_quote", "crypto_quoteday", "runs_run", "apikeys_apikey")
    return {
        table
        for query in captured.captured_queries
        for table in tables
        if re.search(rf'(^|[\s(."]){table}([\s)"]|$)', query["sql"])
    }


def test_the_public_sites_reads_go_to_the_replica(client, coingecko):
    from etl.pipeline.run import ingest_run

    with (
        CaptureQueriesContext(connections["default"]) as primary,
        CaptureQueriesContext(connections[REPLICA]) as replica,
    ):
        assert ingest_run(source_name="coingecko", trigger="cli").status == "success"
    assert tables(primary) and not tables(replica)  # the ETL: primary

    from kasparro.core.apikeys.services import apikey_create

    key = apikey_create(name="replica")[1]
    history = "/assets/bitcoin/history"
    for path, headers in (
        ("/data", {}),
        ("/runs", {"HTTP_X_API_KEY": key}),
        ("/", {}),
        *((f"{history}?interval={interval}", {}) for interval in ("raw", "hour", "day")),
    ):
        with (
            CaptureQueriesContext(connections["default"]) as primary,
            CaptureQueriesContext(connections[REPLICA]) as replica,
        ):
            response = client.get(path, **headers)
        assert response.status_code == 200, path
        assert tables(replica) - {"apikeys_apikey"}, path  # the data: replica
        assert "apikeys_apikey" not in tables(replica), path  # authentication: primary
        assert not tables(primary) - {"apikeys_apikey"}, path


def test_admin_and_writes_stay_on_the_primary(admin_client):
    with CaptureQueriesContext(connections[REPLICA]) as replica:
        assert admin_client.get("/admin/crypto/quote/").status_code == 200
    assert not tables(replica)
    with replica_reads():
        assert Quote.objects.db == REPLICA
        assert APIKey.objects.db == "default"
        assert Quote.objects.none().db == REPLICA
