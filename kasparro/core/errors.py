"""Errors, one owner: the domain exceptions services raise, the handler that turns every API
error into the same JSON shape, and the JSON pages for errors outside DRF (handler400 … 500):

{"error": {"status": 400, "code": "invalid", "message": "...", "details": {...}},
 "request_id": "..."}
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

from kasparro.core.request_id import get_request_id

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A domain rule was broken; the message is safe to show to the caller."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFoundError(ApplicationError):
    status_code = 404
    code = "not_found"


def error_body(status_code: int, code: str, message: str, details: dict | None = None) -> dict:
    body = {"error": {"status": status_code, "code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    body["request_id"] = get_request_id()
    return body


def _message_of(detail) -> str:
    if isinstance(detail, dict):
        field, value = next(iter(detail.items()), ("", ""))
        return f"{field}: {_message_of(value)}" if field else "Invalid request."
    if isinstance(detail, list):
        return _message_of(detail[0]) if detail else "Invalid request."
    return str(detail)


def api_exception_handler(exc, context):
    # Imported here: DRF's views module reads the API settings, whose authentication classes
    # import the services that raise these errors.
    from rest_framework.views import exception_handler

    if isinstance(exc, ApplicationError):
        return Response(
            error_body(exc.status_code, exc.code, exc.message, exc.details), status=exc.status_code
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return Response(
            error_body(413, "payload_too_large", "The request body is too large."), status=413
        )
    elif isinstance(exc, DataError):
        # A value the database cannot hold (a NUL in text, a number out of range): the
        # client's input, not an outage.
        return Response(
            error_body(400, "invalid", "A parameter holds a value that cannot be used."),
            status=400,
        )
    elif isinstance(exc, OperationalError | InterfaceError):
        logger.exception("database unavailable")
        return Response(
            error_body(503, "database_unavailable", "The database is unavailable; try again."),
            status=503,
        )
    elif isinstance(exc, DatabaseError):
        logger.exception("database error")
        return Response(error_body(500, "server_error", "Internal server error."), status=500)

    response = exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled API error", exc_info=exc)
        return Response(error_body(500, "server_error", "Internal server error."), status=500)

    detail = getattr(exc, "detail", response.data)
    details = detail if isinstance(detail, dict) else None
    code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
    if not isinstance(code, str):
        code = "invalid"
    body = error_body(response.status_code, code, _message_of(detail), details)
    response.data = body
    return response


# --- JSON error pages for everything outside DRF (wired as handler400 … handler500) -----------


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(status, code, message), status=status)


def bad_request(request, exception=None):
    return _error(400, "bad_request", "Bad request.")


def permission_denied(request, exception=None):
    return _error(403, "permission_denied", "You do not have permission to do this.")


def page_not_found(request, exception=None):
    return _error(404, "not_found", f"No such endpoint: {request.path}")


def server_error(request):
    return _error(500, "server_error", "Internal server error.")
