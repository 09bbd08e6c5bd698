"""The HTTP client every source uses: timeouts, a shared rate limit, retries of transient
failures with exponential backoff and full jitter, `Retry-After`, and bodies checked before
they are trusted. Permanent failures raise at once with a message that says what to do."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from urllib.parse import urlsplit

import requests
from django.conf import settings

from etl.exceptions import TransientUpstreamError, UpstreamError
from etl.ratelimit import RateLimiter

logger = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = "kasparro-etl/0.1 (+https://github.com/kasparro)"


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header given in seconds or as an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


def _describe(url: str) -> str:
    """Host and path only: no query strings in messages or logs."""
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"


class HttpClient:
    def __init__(
        self,
        *,
        source: str,
        rate_limit_per_minute: int,
        headers: dict[str, str] | None = None,
        auth_hint: str = "",
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source = source
        self.limiter = RateLimiter(source, rate_limit_per_minute)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers.update(headers or {})
        self.auth_hint = auth_hint
        self.sleep = sleep
        # Responses by status ("error" for no response), read into metrics after each run.
        self.stats: Counter[str] = Counter()
        self.timeout = (settings.ETL_HTTP_CONNECT_TIMEOUT, settings.ETL_HTTP_READ_TIMEOUT)
        self.max_retries = settings.ETL_HTTP_MAX_RETRIES
        self.backoff_base = settings.ETL_HTTP_BACKOFF_BASE
        self.backoff_cap = settings.ETL_HTTP_BACKOFF_CAP

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))  # noqa: S311

    def get(
        self, url: str, *, params: dict | None = None, headers: dict | None = None
    ) -> requests.Response:
        """GET with retries. Returns 2xx and 304 responses; raises for everything else."""
        where = _describe(url)
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            self.limiter.acquire(self.sleep)
            wait = self._backoff(attempt)
            try:
                response = self.session.get(
                    url, params=params, headers=headers, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                self.stats["error"] += 1
                last_problem = f"{type(exc).__name__} ({_cause(exc)})"
            else:
                status = response.status_code
                self.stats[str(status)] += 1
                if status < 300 or status == 304:
                    return response
                if status not in TRANSIENT_STATUS:
                    raise UpstreamError(self._permanent_message(where, response))
                last_problem = f"HTTP {status}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if retry_after is not None:
                    if retry_after > self.backoff_cap:
                        raise TransientUpstreamError(
                            f"GET {where}: HTTP {status}, upstream asks to wait "
                            f"{retry_after:.0f}s (more than ETL_HTTP_BACKOFF_CAP)"
                        )
                    wait = max(wait, retry_after)
                if status == 429:
                    self.limiter.penalize(retry_after or wait)
            if attempt == self.max_retries:
                break
            logger.warning(
                "upstream problem, retrying",
                extra={
                    "source": self.source,
                    "upstream": where,
                    "problem": last_problem,
                    "attempt": attempt + 1,
                    "wait_seconds": round(wait, 2),
                },
            )
            self.sleep(wait)
        raise TransientUpstreamError(
            f"GET {where} failed after {self.max_retries + 1} attempts: {last_problem}"
        )

    def _permanent_message(self, where: str, response: requests.Response) -> str:
        message = f"GET {where}: HTTP {response.status_code} {response.reason or ''}".rstrip()
        if response.status_code in (401, 403) and self.auth_hint:
            message += f" - {self.auth_hint}"
        return message

    def get_json(self, url: str, *, params: dict | None = None) -> object:
        response = self.get(url, params=params)
        return decode_json(response, _describe(url))


def decode_json(response: requests.Response, where: str) -> object:
    """The JSON body, or an UpstreamError for an HTML error page or a truncated body."""
    content_type = response.headers.get("Content-Type", "")
    body = response.content
    if "html" in content_type or body.lstrip()[:1] == b"<":
        raise UpstreamError(f"GET {where}: expected JSON, got an HTML page ({content_type or '?'})")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UpstreamError(f"GET {where}: invalid or truncated JSON ({exc})") from None


_ROOT_CAUSE = re.compile(r"(Failed to resolve '[^']*'|\[Errno -?\d+\] [^'\")]*|Read timed out)")


def _cause(exc: Exception) -> str:
    """The root cause in a few words ('[Errno 111] Connection refused'), not urllib3's essay."""
    text = str(exc)
    match = _ROOT_CAUSE.search(text)
    if match:
        return match.group(1).strip(" .")
    return text if len(text) <= 200 else text[:200] + "…"
