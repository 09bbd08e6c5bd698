"""CSV answers for spreadsheets: `?format=csv` (or `Accept: text/csv`) on the endpoints that
offer it streams a header row and one line per item. Errors stay JSON whatever was asked."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from kasparro.core.api import EMPTY_PARAMETER, ApiView


class CSVRenderer(BaseRenderer):
    """Lets content negotiation choose CSV; views that offer it answer with `csv_response`
    (the renderer itself only ever renders errors, as JSON)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data, "application/json", renderer_context)


class _Echo:
    """A file-like object whose write hands the line back to the CSV writer's caller."""

    def write(self, value: str) -> str:
        return value


def csv_response(
    rows: Iterable[Any],
    columns: list[tuple[str, Callable[[Any], Any]]],
    *,
    filename: str,
) -> StreamingHttpResponse:
    """Stream `rows` as CSV: one column per (header, value of a row); None is an empty cell."""
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow([header for header, _ in columns])
        for row in rows:
            yield writer.writerow([_cell(get(row)) for _, get in columns])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"  # 87645, not 87645.000000000000000000
    return value


def wants_csv(request) -> bool:
    renderer = getattr(request, "accepted_renderer", None)
    return getattr(renderer, "format", None) == "csv"


def json_errors(request) -> None:
    """Make an error answer JSON even when CSV was asked for (call before DRF finalizes it)."""
    request.accepted_renderer = JSONRenderer()
    request.accepted_media_type = "application/json"


FORMATS = ("json", "csv")


class CsvApiView(ApiView):
    """An endpoint that also answers CSV (`?format=csv`); its errors stay JSON."""

    renderer_classes = [JSONRenderer, CSVRenderer]

    def perform_content_negotiation(self, request, force=False):
        """`format` is a parameter like the others: an empty or unknown one is a 400 naming it
        (DRF alone would ignore an empty one and answer an unknown one with a 404)."""
        if not force:
            for value in request.query_params.getlist("format"):
                if value not in FORMATS:
                    raise ValidationError(
                        {
                            "format": [
                                EMPTY_PARAMETER if not value else f"one of {', '.join(FORMATS)}"
                            ]
                        }
                    )
        return super().perform_content_negotiation(request, force=force)

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response) and response.status_code >= 400:
            json_errors(request)
        return super().finalize_response(request, response, *args, **kwargs)


FORMAT_PARAMETER = OpenApiParameter(
    "format",
    str,
    enum=list(FORMATS),
    description="`csv` streams the items as CSV with a header row (for spreadsheets).",
)
