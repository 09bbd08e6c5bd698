"""News from RSS 2.0 and Atom feeds (feedparser), one page per feed.

Per feed the cursor keeps the ETag and Last-Modified of the last committed fetch, so an
unchanged feed answers 304 and costs nothing. Entries are keyed by guid, or by their link with
tracking parameters stripped when a feed has no guid.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import feedparser
from django.conf import settings

from etl.exceptions import EtlError, ItemError
from etl.http import HttpClient
from etl.parsing import clean_text, parse_timestamp
from etl.sources.base import ArticleItem, Field, Page, Source

_TAGS = re.compile(r"<[^>]+>")
# Empty elements that feedparser maps onto `summary`, erasing a real <description> before them.
_EMPTY_SUMMARIES = re.compile(rb"<(dc:description|content:encoded)\s*(?:/>|>\s*</\1\s*>)")
_TRACKING_PARAMS = ("utm_", "fbclid", "gclid", "mc_cid", "mc_eid", "ref_src")


def normalize_link(url: str) -> str:
    """Lower-case scheme and host, no fragment, no tracking parameters, no trailing slash."""
    parts = urlsplit(url.strip())
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith(_TRACKING_PARAMS)
    ]
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, urlencode(query), ""))


def strip_tracking(url: str) -> str:
    """The link as stored and shown: the same URL without tracking parameters (`utm_*`,
    `fbclid`, `gclid`, …); case, path and fragment kept."""
    parts = urlsplit(url.strip())
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, v) for k, v in pairs if not k.lower().startswith(_TRACKING_PARAMS)]
    if len(query) == len(pairs):
        return url.strip()
    return urlunsplit(parts._replace(query=urlencode(query)))


def strip_html(text: str) -> str:
    return " ".join(html.unescape(_TAGS.sub(" ", text)).split())


class RssSource(Source):
    name = "rss"
    kind = "news"
    schema = (
        Field("feed", "string", required=True),
        Field("id", "string", fallback="link"),
        Field("link", "string"),
        Field("title", "string", required=True),
        Field("summary", "string"),
        Field("author", "string"),
        Field("published", "timestamp"),
        Field("tags", "string", ignored=True),
    )
    key_fields = ("id",)
    cursor_field = "published"

    def __init__(self, *, feed_urls: list[str] | None = None, client: HttpClient | None = None):
        self.feed_urls = [u for u in (feed_urls or settings.RSS_FEED_URLS) if u.strip()]
        self.client = client or HttpClient(
            source=self.name,
            rate_limit_per_minute=settings.RSS_RATE_LIMIT,
            headers={"Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9"},
        )

    def fetch(self, cursor: dict) -> Iterator[Page]:
        feeds_state: dict = dict(cursor.get("feeds") or {})
        for url in self.feed_urls:
            state = feeds_state.get(url) or {}
            headers = {}
            if state.get("etag"):
                headers["If-None-Match"] = state["etag"]
            if state.get("last_modified"):
                headers["If-Modified-Since"] = state["last_modified"]
            try:
                response = self.client.get(url, headers=headers)
                if response.status_code == 304:
                    yield Page(ref=url, items=[], cursor={"feeds": feeds_state}, not_modified=True)
                    continue
                entries = self._parse(url, response.content)
            except EtlError as exc:
                yield Page(ref=url, items=[], cursor={"feeds": feeds_state}, error=str(exc))
                continue
            feeds_state = {
                **feeds_state,
                url: {
                    "etag": response.headers.get("ETag", ""),
                    "last_modified": response.headers.get("Last-Modified", ""),
                },
            }
            yield Page(ref=url, items=entries, cursor={"feeds": feeds_state})

    def _parse(self, url: str, body: bytes) -> list[dict]:
        body = _EMPTY_SUMMARIES.sub(b"", body)
        parsed = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
        if parsed.bozo and not parsed.entries:
            problem = getattr(parsed, "bozo_exception", None) or "unknown error"
            raise EtlError(f"{url}: not a readable RSS or Atom feed ({problem})")
        if not parsed.get("version") or (not parsed.entries and not parsed.feed):
            raise EtlError(f"{url}: not an RSS or Atom feed")
        return [self._entry(url, entry) for entry in parsed.entries]

    @staticmethod
    def _entry(feed: str, entry: Any) -> dict:
        """The parts of a feedparser entry we keep as the raw item (JSON-serialisable)."""
        summary = entry.get("summary") or ""
        if not summary and entry.get("content"):
            summary = entry["content"][0].get("value", "")
        return {
            "feed": feed,
            "id": entry.get("id") or "",
            "link": entry.get("link") or "",
            "title": entry.get("title") or "",
            "summary": summary,
            "author": entry.get("author") or "",
            "published": entry.get("published") or entry.get("updated") or "",
            "tags": [t.get("term") for t in entry.get("tags", []) if t.get("term")],
        }

    def observe(self, item: Any) -> dict | None:
        """Empty values count as absent: a feed that stops sending guids sends empty ones."""
        if not isinstance(item, dict):
            return None
        return {k: v for k, v in item.items() if v not in (None, "", [])}

    def normalize(self, item: Any) -> ArticleItem:
        if not isinstance(item, dict):
            raise ItemError("malformed", f"expected an object, got {type(item).__name__}")
        try:
            feed = clean_text(item.get("feed"), max_length=500)
            guid = clean_text(item.get("id"), max_length=1000)
            link = clean_text(item.get("link"), max_length=2000)
            title = strip_html(clean_text(item.get("title")))
            summary = strip_html(clean_text(item.get("summary")))[:4000]
            author = clean_text(item.get("author"), max_length=300)
            published = item.get("published") or None
            published_at = parse_timestamp(published) if published else None
        except ValueError as exc:
            raise ItemError("invalid_value", str(exc)) from None
        if not feed:
            raise ItemError("missing_field", "missing 'feed'")
        if link and not link.lower().startswith(("http://", "https://")):
            link = ""
        link = strip_tracking(link) if link else link
        if not guid:
            if not link:
                raise ItemError("missing_key", "entry has neither a guid nor a link")
            guid = link
        if guid.lower().startswith(("http://", "https://")):
            guid = normalize_link(guid)  # the same article whatever tracking its URL carries
        if not title:
            raise ItemError("missing_field", "entry has no title")
        digest = hashlib.sha256(
            json.dumps([title, link, summary, author, published], ensure_ascii=False).encode()
        ).hexdigest()
        return ArticleItem(
            feed=feed,
            guid=guid,
            title=title,
            url=link,
            summary=summary,
            author=author,
            published_at=published_at,
            content_hash=digest,
        )

    @classmethod
    def describe_cursor(cls, cursor: dict) -> str:
        feeds = cursor.get("feeds") or {}
        return f"{len(feeds)} feed(s) with validators"
