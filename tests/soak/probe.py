"""The soak's background client: reads `/data` and `/health` every half second, as a dashboard
or load balancer would, and remembers every answer that was not a success."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass

PATHS = (
    "/data?source=coingecko&limit=20",
    "/data?source=rss&limit=5",
    "/data?source=csv&limit=5",
    "/data?symbol=btc",
)
NO_ANSWER = 0  # the status recorded when the server did not answer at all


@dataclass(frozen=True)
class BadAnswer:
    """A 5xx, or no answer: when it was asked and answered, and what came back."""

    path: str
    status: int
    started: dt.datetime
    ended: dt.datetime
    body: str
    is_json: bool


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, urllib.error.URLError) as exc:
        return NO_ANSWER, str(exc).encode()


def is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


class ApiProbe:
    """A daemon thread polling the web server; `stop()` ends it."""

    def __init__(self, base_url: str, every: float = 0.5, timeout: float = 10) -> None:
        self.base_url, self.every, self.timeout = base_url, every, timeout
        self.answers: Counter[tuple[str, int]] = Counter()
        self.bad: list[BadAnswer] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.timeout + 5)

    def ask(self, path: str) -> tuple[int, bytes]:
        started = dt.datetime.now(dt.UTC)
        status, body = _get(self.base_url + path, self.timeout)
        endpoint = path.split("?")[0]
        with self.lock:
            self.answers[(endpoint, status)] += 1
            if status >= 500 or status == NO_ANSWER:
                self.bad.append(
                    BadAnswer(
                        path=path,
                        status=status,
                        started=started,
                        ended=dt.datetime.now(dt.UTC),
                        body=body[:300].decode(errors="replace"),
                        is_json=is_json(body),
                    )
                )
        return status, body

    def _loop(self) -> None:
        for path in itertools.cycle(PATHS):
            began = time.monotonic()
            self.ask(path)
            self.ask("/health")
            if self._stop.wait(max(0.0, self.every - (time.monotonic() - began))):
                return
