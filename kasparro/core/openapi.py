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
