"""RSS 2.0 feeds for the soak, each gaining an item every `FEED_GROWTH_SECONDS` (never losing
one), with stable guids and ETag/304. It records how many items each feed had in a 200 answer,
and answers 5xx while told to."""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import threading
import time
from xml.sax.saxutils import escape

from werkzeug import Request, Response

from tests.soak.upstreams.common import Clock, Faults, HttpServer

FEEDS = ("alpha", "beta", "gamma")
FEED_INITIAL_ITEMS = 4
FEED_GROWTH_SECONDS = 12


class Feeds:
    """RSS 2.0 feeds at `/feeds/<name>.rss`, each gaining items over time (never losing any,
    so an item served once can always be fetched again by a run that resumes)."""

    def __init__(self, clock: Clock, faults: Faults, seed: int) -> None:
        self.clock, self.faults = clock, faults
        self.rng = random.Random(seed + 1)
        self.lock = threading.Lock()
        self.served_count = dict.fromkeys(FEEDS, 0)
        self.answers: dict[int, int] = {}
        self.server = HttpServer(self.app)

    def url(self, name: str) -> str:
        return f"{self.server.base_url}/feeds/{name}.rss"

    @property
    def urls(self) -> list[str]:
        return [self.url(name) for name in FEEDS]

    def count(self, name: str) -> int:
        # Feeds grow out of step with each other (and with the schedule).
        offset = FEEDS.index(name) * FEED_GROWTH_SECONDS / len(FEEDS)
        grown = int(max(0.0, self.clock.elapsed() - offset) // FEED_GROWTH_SECONDS)
        return FEED_INITIAL_ITEMS + grown

    @staticmethod
    def guid(name: str, number: int) -> str:
        return f"soak-{name}-{number:04d}"

    def served_guids(self) -> set[tuple[str, str]]:
        """(feed URL, guid) of every item that was in a feed body answered with 200."""
        with self.lock:
            counts = dict(self.served_count)
        return {
            (self.url(name), self.guid(name, n))
            for name, count in counts.items()
            for n in range(1, count + 1)
        }

    def body(self, name: str, count: int) -> bytes:
        items = []
        for n in range(count, 0, -1):  # newest first, as real feeds are
            published = self.clock.wall_start + dt.timedelta(seconds=n * FEED_GROWTH_SECONDS)
            items.append(
                f"<item><title>{name.title()} story {n}: Bitcoin and Ethereum move</title>"
                f"<link>https://news.example/{name}/{n}</link>"
                f'<guid isPermaLink="false">{self.guid(name, n)}</guid>'
                f"<description>{escape(f'Story {n} of the {name} feed.')}</description>"
                f"<pubDate>{email.utils.format_datetime(published)}</pubDate></item>"
            )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            f"<title>Soak {name}</title><link>https://news.example/{name}</link>"
            f"<description>Soak feed {name}</description>{''.join(items)}</channel></rss>"
        ).encode()

    def _answer(self, status: int, body: bytes = b"", headers: dict | None = None) -> Response:
        with self.lock:
            self.answers[status] = self.answers.get(status, 0) + 1
        return Response(body, status=status, headers=headers, content_type="application/rss+xml")

    @Request.application
    def app(self, request: Request) -> Response:
        name = request.path.removeprefix("/feeds/").removesuffix(".rss")
        if name not in FEEDS:
            return self._answer(404)
        with self.lock:
            latency = self.rng.uniform(0.05, 0.4)
            server_error = self.rng.choice((500, 502, 503))
        time.sleep(latency)
        if self.faults.hit("feeds_5xx"):
            return self._answer(server_error, b"<html>upstream trouble</html>")
        count = self.count(name)
        etag = f'"{name}-{count}"'
        if request.headers.get("If-None-Match") == etag:
            return self._answer(304, headers={"ETag": etag})
        response = self._answer(200, self.body(name, count), {"ETag": etag})
        with self.lock:
            self.served_count[name] = max(self.served_count[name], count)
        return response
