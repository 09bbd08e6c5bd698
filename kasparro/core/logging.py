"""Logging: every record carries the request id or the run id and source of the work it
belongs to; JSON lines in production, readable lines with DEBUG; secrets redacted in both."""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
from collections.abc import Iterator

from kasparro.core.request_id import get_request_id

_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)
_source: contextvars.ContextVar[str | None] = contextvars.ContextVar("source", default=None)

# Our API keys, wherever they appear.
_API_KEY = re.compile(r"kas_[0-9a-f]{12}_[A-Za-z0-9_-]+")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request",  # Django's request object: its id is logged instead
    "context",
}


@contextlib.contextmanager
def log_context(*, run_id: str | None = None, source: str | None = None) -> Iterator[None]:
    """Tag every log line inside the block with a run id and source."""
    tokens = [_run_id.set(run_id), _source.set(source)]
    try:
        yield
    finally:
        _source.reset(tokens[1])
        _run_id.reset(tokens[0])


def redact(text: str) -> str:
    """Remove our API keys and configured upstream secrets from a log line."""
    from django.conf import settings

    for name in SECRET_SETTINGS:
        value = getattr(settings, name, "")
        if value and len(value) >= 6:
            text = text.replace(value, "[redacted]")
    return _API_KEY.sub("[redacted]", text)


SECRET_SETTINGS = ("COINGECKO_API_KEY", "SECRET_KEY")


class ContextFilter(logging.Filter):
    """Adds request_id, run_id and source to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        # django.request logs after the response left the middleware: use its request.
        request = getattr(record, "request", None)
        record.request_id = (
            getattr(record, "request_id", None)
            or get_request_id()
            or getattr(request, "request_id", None)
        )
        record.run_id = getattr(record, "run_id", None) or _run_id.get()
        record.source = getattr(record, "source", None) or _source.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class ConsoleFormatter(logging.Formatter):
    """Readable lines for a developer's terminal (DEBUG on)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(context)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"{key}={getattr(record, key)}"
            for key in ("request_id", "run_id", "source")
            if getattr(record, key, None)
        ]
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return redact(super().format(record))
