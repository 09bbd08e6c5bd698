"""The OpenAPI document, the docs pages (no CDN), and schemathesis over every operation."""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from kasparro.wsgi import application

pytestmark = pytest.mark.django_db


def test_schema_and_docs_are_served_without_a_cdn(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    document = schema.json()
    assert document["openapi"].startswith("3.")
    assert {
        "/data",
        "/health",
        "/stats",
        "/runs",
        "/compare-runs",
        "/news",
        "/assets/{slug}/history",
    } <= set(document["paths"])
    for page in ("/api/docs/", "/api/redoc/"):
        html = client.get(page).content.decode()
        assert "static/drf_spectacular_sidecar" in html
        assert "cdn." not in html and "jsdelivr" not in html and "unpkg" not in html


@pytest.fixture
def wsgi_keeps_test_connection():
    """Calling the WSGI app directly would close the test's connection at each request's end;
    Django's test client disconnects the same handlers."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def test_api_never_errors_and_always_matches_its_schema(
    loaded, api_key, wsgi_keeps_test_connection
):
    """schemathesis generates requests for every operation of /api/schema/ (valid and
    invalid), sends them through the WSGI app with a valid key, and checks each response: no
    5xx, and the body matches the schema for its status."""
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case):
            case.headers = {**(case.headers or {}), "X-API-Key": api_key}
            response = case.call()
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )

        check()
