"""Log lines are JSON, carry the request id or run id and source, and never carry a key."""

from __future__ import annotations

import io
import json
import logging

import pytest

from etl.pipeline.run import ingest_run
from kasparro.core.apikeys.services import apikey_create
from kasparro.core.logging import ConsoleFormatter, ContextFilter, JsonFormatter

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(previous)


def test_request_log_lines_carry_the_request_id(client, json_lines):
    response = client.get("/stats", HTTP_X_REQUEST_ID="trace-me-1")
    assert response.status_code == 401
    lines = [line for line in json_lines() if line.get("request_id") == "trace-me-1"]
    assert lines, json_lines()
    assert any(line["logger"] == "django.request" for line in lines)


def test_run_log_lines_carry_run_id_and_source(coingecko, json_lines):
    run = ingest_run(source_name="coingecko", trigger="cli")
    lines = [line for line in json_lines() if line["logger"].startswith("etl")]
    assert len(lines) >= 4  # started, two pages, finished
    assert all(line["run_id"] == str(run.id) and line["source"] == "coingecko" for line in lines)
    assert all(set(line) >= {"ts", "level", "logger", "message"} for line in lines)


def test_keys_are_never_logged(client, json_lines, settings, coingecko):
    _, raw = apikey_create(name="secret-holder")
    logging.getLogger("test").warning("client sent %s", raw)
    client.get("/nope", HTTP_X_API_KEY=raw)
    settings.COINGECKO_API_KEY = "cg-demo-secret-value"
    logging.getLogger("test").warning("header x-cg-demo-api-key: cg-demo-secret-value")
    ingest_run(source_name="coingecko", trigger="cli")
    text = json.dumps(json_lines())
    assert raw not in text and "cg-demo-secret-value" not in text
    assert text.count("[redacted]") >= 2


def test_console_format_is_readable_with_context():
    record = logging.LogRecord("etl", logging.INFO, __file__, 1, "page committed", None, None)
    record.run_id, record.source, record.request_id = "r-1", "csv", None
    line = ConsoleFormatter().format(record)
    assert "page committed" in line and "run_id=r-1 source=csv" in line
