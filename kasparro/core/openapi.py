"""OpenAPI links (how one operation's answer feeds another's request), declared next to the
operation that answers, and the schema hook that puts them where OpenAPI wants them: in the
response object, which drf-spectacular offers no way to reach."""

from __future__ import annotations

from typing import Any

LINKS_EXTENSION = "x-response-links"


def response_links(status: int = 200, **links: dict) -> dict[str, Any]:
    """For `extend_schema(extensions=...)`: the named links of the operation's `status` answer."""
    return {LINKS_EXTENSION: {str(status): links}}


def link(
    operation_id: str,
    description: str,
    *,
    parameters: dict[str, str] | None = None,
    request_body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A link to `operation_id`; values are runtime expressions such as
    `$response.body#/data/0/id`."""
    definition: dict[str, Any] = {"operationId": operation_id, "description": description}
    if parameters:
        definition["parameters"] = parameters
    if request_body is not None:
        definition["requestBody"] = request_body
    return definition


def move_response_links(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: each operation's `x-response-links` into its
    responses' `links`. A link to a response the operation does not declare is a bug: it fails
    here, when the schema is generated, rather than vanishing."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            for status, links in operation.pop(LINKS_EXTENSION, {}).items():
                operation["responses"][status]["links"] = links
    return result


VALIDATED = "etag"  # a view handler's attribute: it answers with validators (and 304)


def document_validators(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: an operation whose handler answers with an ETag
    (its `etag` attribute, set by the response cache's decorator) documents the
    `If-None-Match` and `If-Modified-Since` headers it honours, the `ETag` and `Last-Modified`
    of its 200, and its 304."""
    validator_headers = {
        "ETag": {
            "description": "Strong: the same for as long as the data version is the same.",
            "schema": {"type": "string"},
        },
        "Last-Modified": {
            "description": "When the data version last changed.",
            "schema": {"type": "string"},
        },
    }
    for path, _, method, callback in generator.endpoints:
        handler = getattr(callback.cls, method.lower(), None)
        operation = result["paths"].get(path, {}).get(method.lower())
        if operation is None or not getattr(handler, VALIDATED, False):
            continue
        operation.setdefault("parameters", []).extend(
            [
                {
                    "in": "header",
                    "name": "If-None-Match",
                    "schema": {"type": "string"},
                    "description": "An ETag of an earlier answer: a 304 while it is current.",
                },
                {
                    "in": "header",
                    "name": "If-Modified-Since",
                    "schema": {"type": "string"},
                    "description": "HTTP date (used without If-None-Match): a 304 when the "
                    "data has not changed since.",
                },
            ]
        )
        responses = operation["responses"]
        responses["200"].setdefault("headers", {}).update(validator_headers)
        responses["304"] = {
            "description": "Not modified: the answer is the one the client holds.",
            "headers": validator_headers,
        }
    return result
