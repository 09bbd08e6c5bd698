"""Read endpoints answered from the cache, keyed and tagged by the data version.

A JSON answer is a function of the request (scheme, host, path, query parameters) and of the
data, which changes only when the data version advances (`crypto.versions`). So `@versioned`
gets the version and:

- sends a strong `ETag` (`"<version>.<digest of the request>"`) and `Last-Modified` (the
  version's time); `If-None-Match` naming it (or, without one, `If-Modified-Since` at or after
  that time) gets a 304 with no body;
- else serves the body cached under (request, version), or computes it, caches it and serves
  it. The per-response members (`request_id`, `api_latency_ms`) are not cached: the body is
  cached without them and they are written in front of it at every answer.

It runs inside the view's `get`, so throttles, authentication and permissions have already
run: a revoked key gets its 401 whatever is cached. (A public request that needs nothing of
DRF, no credentials among it, is answered by `stored_answer` from `ApiView.dispatch`, after
the rate limits, before DRF wraps it.) A body is never served under another
version, so none outlives the commit that changed its data; old versions' bodies simply expire
(`CACHE_SECONDS`). CSV answers stream as before. Errors are never cached. A cache that cannot
be reached costs the answer its caching, not its answer.

Where they are kept: with Redis, the version's copy there (published after each commit,
`crypto.versions`) and the answer stored under it are read in the same round trip as the rate
limits (`ApiView.initial`, `kasparro.core.throttle.Read`), so a cached answer costs one Redis
call and no query; when the copy is missing (expired, or Redis lost) the version is read from
the database and published again. Without Redis: the database's version, the local cache.
With a read replica, an answer is stored under a version only if the replica holds it
(`_readable`): one computed from a replica still behind the primary is served, not stored.

Time-relative answers (`/stats`: a window ending now, staleness) take `seconds=1`: the key
also holds the current second, the body is cached for that second only, and no validator is
sent (the same version does not mean the same answer there).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from urllib.parse import urlencode

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, router
from django.http import HttpResponse, HttpResponseNotModified
from django.utils.http import http_date, parse_http_date_safe
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from crypto.models import DataVersion
from crypto.versions import Version, data_version, version_key, version_parse, version_publish
from kasparro.core.csv_export import wants_csv
from kasparro.core.request_id import get_request_id
from kasparro.core.throttle import Read, cache_namespace, cache_redis

logger = logging.getLogger(__name__)

CACHE_SECONDS = 3600  # a version's bodies live at most this long after their last use
META = ("request_id", "api_latency_ms")  # per response: written in front of the cached body
HEADERS = ("Link",)  # headers of the computed answer that the cached one keeps


def _digest(request) -> str:
    params = sorted((name, value) for name, values in request.GET.lists() for value in values)
    text = f"{request.scheme}://{request.get_host()}{request.path}?{urlencode(params)}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _not_modified(request, etag: str, version: Version) -> bool:
    sent = request.META.get("HTTP_IF_NONE_MATCH")
    if sent is not None:
        return sent.strip() == "*" or etag in (tag.strip() for tag in sent.split(","))
    # HTTP dates have whole seconds: two changes in one second share a Last-Modified, so only
    # a date after the version's second proves the client saw the current data.
    since = parse_http_date_safe(request.META.get("HTTP_IF_MODIFIED_SINCE", ""))
    return since is not None and int(version.changed_at.timestamp()) < since


def _store_get(key: str) -> bytes | None:
    """A stored answer: in the cache's Redis when there is one (raw bytes, so that the
    throttles' round trip can read it), else in the Django cache (local memory)."""
    try:
        client = cache_redis()
        return client.get(key) if client is not None else cache.get(key)
    except Exception:  # the backend's connection errors vary: answer without the cache
        logger.warning("response cache unavailable", exc_info=True)
        return None


def _store_set(key: str, value: bytes, seconds: int) -> None:
    try:
        client = cache_redis()
        if client is not None:
            client.set(key, value, ex=seconds)
        else:
            cache.set(key, value, seconds)
    except Exception:
        logger.warning("response cache unavailable", exc_info=True)


def _split(response: Response) -> bytes | None:
    """A computed answer as stored: a JSON line (its per-response member names and the headers
    it keeps), then its body without those members; None when it is not a cacheable one (an
    error, or per-response members not at the front)."""
    if not isinstance(response, Response) or response.status_code != 200:
        return None
    data = response.data
    if not isinstance(data, dict):
        return None
    names = list(data)
    meta = [name for name in META if name in data]
    if names[: len(meta)] != meta:
        return None
    body = JSONRenderer().render({name: data[name] for name in names[len(meta) :]})
    headers = {name: response[name] for name in HEADERS if response.has_header(name)}
    return json.dumps({"meta": meta, "headers": headers}).encode() + b"\n" + body


def _unpack(stored: bytes) -> tuple[list[str], dict, bytes]:
    head, _, body = stored.partition(b"\n")
    info = json.loads(head)
    return info["meta"], info["headers"], body


def _assemble(view, request, meta: tuple[str, ...], body: bytes) -> bytes:
    values = {"request_id": get_request_id(), "api_latency_ms": view.latency_ms(request)}
    front = ",".join(
        f"{json.dumps(name)}:{json.dumps(values[name], ensure_ascii=False)}" for name in meta
    )
    if not front:
        return body
    rest = body[1:]  # after "{"
    return b"{" + front.encode() + (b"," if rest != b"}" else b"") + rest


def _readable(version: Version) -> bool:
    """Whether the database reads go to holds `version`: always, unless reads go to a replica
    (DATABASE_REPLICA_URL) that lags behind the primary's version copied to Redis; an answer
    computed from older rows must not be stored under the newer number."""
    if _reads_on() == DEFAULT_DB_ALIAS:
        return True
    return data_version().number >= version.number


def _reads_on() -> str:
    return router.db_for_read(DataVersion)


def _rest(request, seconds: int | None) -> str:
    """The key of the request's answer, after the version's number."""
    digest = _digest(request)
    return f":{digest}" if seconds is None else f":{int(time.time()) // seconds}:{digest}"


def _prefix() -> str:
    return f"{cache_namespace()}:api:"


def versioned(get=None, *, seconds: int | None = None):
    """Decorate an API view's `get` (see the module docstring); `seconds` for answers that
    depend on the time as well as the data."""
    if get is None:
        return functools.partial(versioned, seconds=seconds)

    def cache_read(request) -> Read:
        """What `ApiView` reads in the throttles' round trip: the version and this answer (its
        key kept on the request, so the view uses the very key that was read)."""
        request.cache_rest = _rest(request, seconds)
        return Read(version_key(), _prefix(), request.cache_rest)

    def stored_answer(view, request, found) -> HttpResponse | None:
        """The answer without computing it, from what the round trip `found` (`Charged`): a
        304, or the body stored under the version's copy; None when the copy or the body was
        not there. `request` may be Django's own (`ApiView.dispatch`'s fast path)."""
        if found is None or found.version is None:
            return None
        return _answer(view, request, version_parse(found.version), found.body, request.cache_rest)

    @functools.wraps(get)
    def cached_get(view, request, *args, **kwargs):
        if wants_csv(request):
            return get(view, request, *args, **kwargs)
        prefetched = getattr(request, "prefetched", None)
        looked = prefetched is not None and prefetched.version is not None
        if looked:  # the version's copy, and the answer under it if stored
            version, stored = version_parse(prefetched.version), prefetched.body
        else:  # no Redis, or no copy of the version there: the database, then the store
            version, stored = data_version(), None
            version_publish(version)
        rest = getattr(request, "cache_rest", None) or _rest(request, seconds)
        key = f"{_prefix()}{version.number}{rest}"
        if stored is None and not looked:
            answer = _answer(view, request, version, None, rest)  # a 304 needs no store read
            if answer is not None:
                return answer
            stored = _store_get(key)
        answer = _answer(view, request, version, stored, rest)
        if answer is not None:
            return answer
        response = get(view, request, *args, **kwargs)
        stored = _split(response)
        if stored is None:
            return response
        if _readable(version):
            _store_set(key, stored, seconds or CACHE_SECONDS)
        return _answer(view, request, version, stored, rest)

    def _answer(view, request, version, stored, rest) -> HttpResponse | None:
        """The 304 when the client holds this version's answer; else the `stored` answer with
        this request's members and headers; None when nothing is stored."""
        # Revalidate every time (cheap: a 304); answers to a key are for its holder only.
        private = getattr(request, "auth", None) is not None
        headers = {"Cache-Control": "private, no-cache" if private else "no-cache"}
        if seconds is None:
            etag = f'"{version.number}.{rest[1:21]}"'
            headers["ETag"] = etag
            headers["Last-Modified"] = http_date(version.changed_at.timestamp())
            if _not_modified(request, etag, version):
                return HttpResponseNotModified(headers=headers)
        if stored is None:
            return None
        meta, kept, body = _unpack(stored)
        answer = HttpResponse(
            _assemble(view, request, tuple(meta), body), content_type="application/json"
        )
        for name, value in {**kept, **headers}.items():
            answer[name] = value
        return answer

    cached_get.cache_read = cache_read
    cached_get.stored_answer = stored_answer
    cached_get.etag = seconds is None  # kasparro.core.openapi documents its validators and 304
    return cached_get
