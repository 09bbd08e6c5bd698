"""API throttling, its one owner: every API request is charged to its client address and, when
an API key authenticated it, to that key, both in ONE Redis round trip.

Each limit is a sliding window log, as DRF's `SimpleRateThrottle` kept it, so "3/min" lets
exactly 3 requests through in any 60 seconds: one sorted set per bucket holds the times of the
requests it let through. One Lua script trims, counts and charges the buckets atomically, in
order (address, then key): a request the address refuses charges nothing; one the address allows
and the key refuses stays charged to the address. DRF's two throttles each read and rewrote a
history list in the cache: four round trips, 1.75 ms of a 4.6 ms request (issue 16). Side by side
on a local Redis, 500 requests from one address with one key: 1.8 ms for DRF's pair, 0.25 ms for
the script.

The counts live in the cache's Redis (its LOCATION, its OPTIONS' timeouts, under its
KEY_PREFIX); without a Redis cache (zero-config) the same windows are kept in this process.
Redis unreachable: the request is allowed and a warning logged, so reads keep being served.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest
from redis.exceptions import NoScriptError, RedisError
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from kasparro.core.apikeys.models import APIKey

logger = logging.getLogger(__name__)

REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# KEYS: the buckets, in order, then (when a read is asked) the version key. ARGV[1]: a token
# unique to this request, ARGV[2]: the number of buckets, then each bucket's limit and window
# (microseconds), then (a read) the body key's prefix and suffix. Returns {0, 0, version, body}
# when every bucket let the request through (each is charged): the version key's value and the
# body stored under prefix .. <its number> .. suffix, false where missing or not asked; else
# {i, wait}: bucket i refused it (the buckets before it stay charged, the ones after it are not
# touched) and its oldest entry leaves its window in `wait` microseconds.
_CHARGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local member = t[1] .. string.format('%06d', tonumber(t[2])) .. '-' .. ARGV[1]
local n = tonumber(ARGV[2])
for i = 1, n do
  local key = KEYS[i]
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]
    if oldest then return {i, tonumber(oldest) + window - now} end
    return {i, window}
  end
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, math.ceil(window / 1000))
end
if #KEYS == n then return {0, 0} end
local version = redis.call('GET', KEYS[n + 1])
if not version then return {0, 0, false, false} end
local number = string.match(version, '^(%d+)')
local body = redis.call('GET', ARGV[3 + 2 * n] .. number .. ARGV[4 + 2 * n])
return {0, 0, version, body}
"""


@dataclass(frozen=True, slots=True)
class Read:
    """What a request reads in the throttles' round trip: the value of `version_key` (text
    that starts with a number) and the body stored under `prefix + <that number> + suffix`."""

    version_key: str
    prefix: str
    suffix: str


@dataclass(frozen=True, slots=True)
class Charged:
    wait: int | None  # None: the request may go through; else seconds until it may
    version: bytes | None = None  # what the read found (None: missing, not asked, no Redis)
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Rate:
    requests: int
    seconds: int


@lru_cache(maxsize=64)  # a few settings' values, read at every request
def rate_parse(rate: str | None) -> Rate | None:
    """DRF's rate syntax, read as DRF reads it: "N/period", the period known by its first
    letter (s, m, h, d: "600/min", "10/second"). None: no limit."""
    if rate is None:
        return None
    count, period = rate.split("/")
    return Rate(requests=int(count), seconds=PERIODS[period[0]])


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    rate: Rate


_per_thread = threading.local()


def _charge_script(url: str, connect_timeout: float, timeout: float):
    """The charge script registered on this thread's client of `url` (EVALSHA, loaded once per
    server). Each thread keeps one client holding one connection: a checkout from a shared
    pool costs a system call per command (redis-py makes sure the connection has no unread
    data), 15-20 µs of CPU of the 80 that a round trip cost in all, measured. Creating the
    client connects, so an unreachable Redis raises here as a command would. A forked process
    (a Celery child) starts with clients of its own: a held connection skips redis-py's check
    of the process id, and a parent's socket must never be shared."""
    if getattr(_per_thread, "pid", None) != os.getpid():  # a forked child holds no parent's
        _per_thread.pid, _per_thread.scripts = os.getpid(), {}
    scripts = _per_thread.scripts
    script = scripts.get((url, connect_timeout, timeout))
    if script is None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=timeout,
            single_connection_client=True,
            # A held connection that Redis closed (a restart, its idle timeout) is found
            # closed by the next command, which reconnects once; a timeout is not retried.
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        )
        script = scripts[(url, connect_timeout, timeout)] = client.register_script(_CHARGE)
    return script


def _evalsha(script, keys: list[str], args: list[str | int]) -> list:
    """Run a registered script by its digest (what `Script.__call__` does, without its
    per-call work); a server that does not know it yet gets it loaded first."""
    try:
        return script.registered_client.execute_command(
            "EVALSHA", script.sha, len(keys), *keys, *args
        )
    except NoScriptError:
        return script(keys=keys, args=args)


def _redis_location() -> tuple[str, float, float] | None:
    """The cache's Redis (its primary, as Django's RedisCache writes to it) and timeouts; None
    when the cache is not Redis."""
    cache = settings.CACHES["default"]
    if cache["BACKEND"] != REDIS_CACHE:
        return None
    location = cache["LOCATION"]
    primary = (location.split(",") if isinstance(location, str) else location)[0].strip()
    options = cache.get("OPTIONS", {})
    return (
        primary,
        options.get("socket_connect_timeout", 2),
        options.get("socket_timeout", 2),
    )


class _LocalWindows:
    """The same sliding windows in this process, for zero-config mode."""

    SWEEP_AT = 10_000  # buckets kept before the idle ones are dropped

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.logs: dict[str, tuple[int, deque[float]]] = {}
        self.sweep_at = self.SWEEP_AT

    def charge(self, buckets: list[Bucket]) -> tuple[int, float]:
        with self.lock:
            now = time.monotonic()
            for index, bucket in enumerate(buckets, 1):
                window = bucket.rate.seconds
                _, log = self.logs.setdefault(bucket.key, (window, deque()))
                while log and log[0] <= now - window:
                    log.popleft()
                if len(log) >= bucket.rate.requests:
                    return index, (log[0] + window - now) if log else window
                log.append(now)
            if len(self.logs) > self.sweep_at:
                self._sweep(now)
            return 0, 0.0

    def _sweep(self, now: float) -> None:
        self.logs = {
            key: (window, log)
            for key, (window, log) in self.logs.items()
            if log and log[-1] > now - window
        }
        self.sweep_at = max(self.SWEEP_AT, 2 * len(self.logs))

    def clear(self) -> None:
        with self.lock:
            self.logs.clear()


_local = _LocalWindows()


def throttle_local_clear() -> None:
    """Forget the in-process counts (tests: each starts with none, as with a fresh cache)."""
    _local.clear()


def _buckets(*, address: str, key_prefix: str | None) -> list[Bucket]:
    namespace = cache_namespace()
    wanted = [("address", address, settings.API_RATE_PER_ADDRESS)]
    if key_prefix is not None:
        wanted.append(("apikey", key_prefix, settings.API_RATE_PER_KEY))
    return [
        Bucket(key=f"{namespace}:throttle:{scope}:{ident}", rate=rate)
        for scope, ident, setting in wanted
        if (rate := rate_parse(setting)) is not None
    ]


def throttle_charge(*, address: str, key_prefix: str | None = None) -> int | None:
    """Charge one request to `address` and (given) the API key with `key_prefix`, at the
    configured rates (`API_RATE_PER_ADDRESS`, `API_RATE_PER_KEY`). None: it may go through;
    else the whole seconds (at least 1) until the refusing window has room again."""
    return throttle_charge_and_read(address=address, key_prefix=key_prefix).wait


def throttle_charge_and_read(
    *, address: str, key_prefix: str | None = None, read: Read | None = None
) -> Charged:
    """`throttle_charge`, and in the same round trip `read` (a cached answer and the version
    it is kept under: `crypto.response_cache`). Without Redis, or with Redis unreachable, the
    read finds nothing and the caller reads elsewhere."""
    buckets = _buckets(address=address, key_prefix=key_prefix)
    location = _redis_location()
    if location is None:
        refused, wait = _local.charge(buckets) if buckets else (0, 0.0)
        return Charged(max(1, math.ceil(wait)) if refused else None)
    if not buckets and read is None:
        return Charged(None)
    args: list[str | int] = [secrets.token_hex(8), len(buckets)]
    for bucket in buckets:
        args += [bucket.rate.requests, bucket.rate.seconds * 1_000_000]
    keys = [bucket.key for bucket in buckets]
    if read is not None:
        keys.append(read.version_key)
        args += [read.prefix, read.suffix]
    try:
        refused, wait_us, *found = _evalsha(_charge_script(*location), keys, args)
    except (RedisError, OSError) as exc:
        logger.warning("throttle: Redis unavailable, request allowed: %r", exc)
        return Charged(None)
    if refused:
        return Charged(max(1, math.ceil(wait_us / 1_000_000)))
    version, body = [*found, None, None][:2]
    return Charged(None, version or None, body or None)


def cache_redis():
    """This thread's client of the cache's Redis (the one the throttles use), or None without
    one. Creating it connects: an unreachable Redis raises `RedisError` here, as a command
    would, so callers ask for it inside the `try` that guards their commands."""
    location = _redis_location()
    return None if location is None else _charge_script(*location).registered_client


def cache_namespace() -> str:
    """The cache's KEY_PREFIX: keys written straight to its Redis live under it."""
    return settings.CACHES["default"].get("KEY_PREFIX", "")


def throttle_request(request: Request | HttpRequest, read: Read | None = None) -> Charged:
    """`throttle_charge_and_read` for an API request: its client address as DRF identifies it
    (the peer, or the NUM_PROXIES-th address of X-Forwarded-For), and its API key when one
    authenticated it (`request.auth`; Django's own request has none: no key)."""
    address = BaseThrottle().get_ident(request) or "unknown"  # no REMOTE_ADDR: one bucket
    auth = getattr(request, "auth", None)
    key_prefix = auth.prefix if isinstance(auth, APIKey) else None
    return throttle_charge_and_read(address=address, key_prefix=key_prefix, read=read)
