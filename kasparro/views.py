"""Project-level views: JSON error pages for everything outside DRF."""

from __future__ import annotations

from django.http import JsonResponse

from kasparro.exceptions import error_body


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
