"""The OpenAPI document tells the truth: it is served without a CDN, every operation carries
examples that its own schema accepts, and schemathesis run from outside with every check, in
every phase (examples, coverage, fuzzing, stateful through the links), against a live server
with data finds nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
OPERATIONS = 10


def fetch_schema(client) -> dict:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


@pytest.mark.django_db
def test_schema_and_docs_are_served_without_a_cdn(client):
    document = fetch_schema(client)
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


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def as_json_schema(value):
    """OpenAPI 3.0's `nullable: true` spelled as JSON Schema (a `null` type)."""
    if isinstance(value, list):
        return [as_json_schema(item) for item in value]
    if not isinstance(value, dict):
        return value
    converted = {k: as_json_schema(v) for k, v in value.items() if k != "nullable"}
    if value.get("nullable"):
        if "type" in converted:
            converted["type"] = [converted["type"], "null"]
        if "enum" in converted:
            converted["enum"] = [*converted["enum"], None]
        if "allOf" in converted or "$ref" in converted:
            converted = {"anyOf": [converted, {"type": "null"}]}
    return converted


def validate(example, document: dict, schema: dict) -> None:
    """`example` against `schema`, whose `$ref`s resolve in the document's components."""
    jsonschema.validate(example, as_json_schema({**schema, "components": document["components"]}))


@pytest.mark.django_db
def test_every_operation_has_examples_that_its_schema_accepts(client):
    document = fetch_schema(client)
    seen = 0
    for name, operation in operations(document):
        examples = 0
        for parameter in operation.get("parameters", []):
            for example in parameter.get("examples", {}).values():
                validate(example["value"], document, parameter["schema"])
                examples += 1
        for media in operation.get("requestBody", {}).get("content", {}).values():
            for example in media.get("examples", {}).values():
                validate(example["value"], document, media["schema"])
                examples += 1
        for response in operation["responses"].values():
            for media in response.get("content", {}).values():
                for example in media.get("examples", {}).values():
                    validate(example["value"], document, media["schema"])
                    examples += 1
        assert examples, f"{name} has no example"
        seen += 1
    assert seen == OPERATIONS


@pytest.mark.django_db
def test_authentication_is_two_alternative_schemes_not_a_header_parameter(client):
    document = fetch_schema(client)
    schemes = document["components"]["securitySchemes"]
    assert {name: (s["in"], s["name"]) for name, s in schemes.items()} == {
        "TokenAuth": ("header", "Authorization"),
        "ApiKeyAuth": ("header", "X-API-Key"),
    }
    for name, operation in operations(document):
        headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
        # Only the validators a cached answer honours (If-None-Match...), never a credential.
        assert headers <= {"If-None-Match", "If-Modified-Since"}, name
        if name == "GET /health":
            assert operation["security"] == [{}]
        elif name.split()[1] in ("/stats", "/runs", "/runs/{run_id}", "/compare-runs"):
            assert operation["security"] == [{"TokenAuth": []}, {"ApiKeyAuth": []}], name
        else:  # public: no key needed, a key sent is checked
            assert operation["security"] == [{"TokenAuth": []}, {"ApiKeyAuth": []}, {}], name


@pytest.mark.django_db
def test_runs_link_to_a_run_and_to_a_comparison(client):
    document = fetch_schema(client)
    links = document["paths"]["/runs"]["get"]["responses"]["200"]["links"]
    assert links["RunDetail"] == {
        "operationId": "runs_retrieve",
        "description": "The newest run listed, in detail.",
        "parameters": {"run_id": "$response.body#/data/0/id"},
    }
    assert links["CompareRuns"]["operationId"] == "compare_runs_create"
    assert links["CompareRuns"]["requestBody"] == {
        "run_id_1": "$response.body#/data/1/id",
        "run_id_2": "$response.body#/data/0/id",
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_schemathesis_with_every_check_finds_nothing_from_outside(live_api, tmp_path):
    """The CLI, as the issue ran it: every check, every phase, against the app under gunicorn
    with data and a key. Any failure, error or warning (an operation that only ever answered
    404 included) fails the run; the report must show every operation accepted at least once."""
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            SCHEMATHESIS,
            "--config-file",
            CONFIG,
            "--no-color",
            "run",
            f"{live_api.url}/api/schema/?format=json",
            "--checks",
            "all",
            "--header",
            f"X-API-Key: {live_api.key}",
            "--report",
            "json",
            "--report-json-path",
            report,
        ],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    summary = json.loads(report.read_text())
    assert summary["complete"] and summary["stop_reason"] == "completed"
    assert summary["operations"]["tested"] == OPERATIONS
    assert summary["failures"] == [] and summary["errors"] == []
    assert all(phase["status"] == "success" for phase in summary["phases"].values()), summary
    assert not any(summary["warnings"].values()), summary["warnings"]
    accepted = {
        operation: sum(phase["accepted"] for phase in phases.values())
        for operation, phases in summary["valid_rates"].items()
    }
    assert len(accepted) == OPERATIONS
    assert all(accepted.values()), accepted
