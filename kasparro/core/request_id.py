"""Request ids: taken from `X-Request-ID` when the caller sends one, generated otherwise,
returned in the response header and available to logs and error bodies via a context var."""

from __future__ import annotations

import contextvars
import re
import time
import uuid

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def get_request_id() -> str | None:
    return _request_id.get()


class RequestIdMiddleware:
    header = "X-Request-ID"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        sent = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = sent if _VALID.match(sent) else uuid.uuid4().hex
        request.request_id = request_id
        request.started_at = time.perf_counter()
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response[self.header] = request_id
        return response
