"""What the soak's upstreams share: a clock that can be frozen, fault windows that open on the
first request they meet, and a threaded HTTP server on a free 127.0.0.1 port."""

from __future__ import annotations

import datetime as dt
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from werkzeug.serving import WSGIRequestHandler, make_server


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Clock:
    """Seconds since the upstreams started, which stop advancing once frozen."""

    def __init__(self) -> None:
        self.wall_start = utc_now().replace(microsecond=0)
        self._start = time.monotonic()
        self._frozen: float | None = None

    def elapsed(self) -> float:
        now = time.monotonic() if self._frozen is None else self._frozen
        return now - self._start

    def freeze(self) -> None:
        self._frozen = time.monotonic()

    @property
    def frozen(self) -> bool:
        return self._frozen is not None


@dataclass
class Window:
    """A fault window: armed by the chaos, opened by the first request that meets it (so it
    always bites), closed `seconds` later. `hits` counts the faulty answers it caused."""

    name: str
    seconds: float
    opened: float | None = None  # monotonic time of the first hit
    hits: int = 0


class Faults:
    """Fault windows by name (`coingecko_429`, `coingecko_5xx`, `feeds_5xx`), thread-safe."""

    def __init__(self) -> None:
        self._armed: dict[str, Window] = {}
        self._lock = threading.Lock()

    def arm(self, name: str, seconds: float) -> Window:
        with self._lock:
            window = self._armed[name] = Window(name, seconds)
            return window

    def hit(self, name: str) -> bool:
        """Whether this request gets the fault (counted as a hit)."""
        with self._lock:
            window = self._armed.get(name)
            if window is None:
                return False
            now = time.monotonic()
            if window.opened is None:
                window.opened = now
            if now >= window.opened + window.seconds:
                del self._armed[name]
                return False
            window.hits += 1
            return True

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # thousands of lines nobody reads
        pass


class HttpServer:
    """A threaded werkzeug server on a free 127.0.0.1 port, in a daemon thread."""

    def __init__(self, app: Callable) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def wiggle(key: str, step: int) -> Decimal:
    """A deterministic factor in [0.98, 1.02] for (key, step)."""
    return 1 + Decimal((zlib.crc32(key.encode()) + 7919 * step) % 41 - 20) / 1000
