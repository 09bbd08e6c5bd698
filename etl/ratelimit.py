"""Rate limits per upstream, shared by every process through Redis (in-process without Redis).

The algorithm is GCRA with reservation: each call atomically books the next free slot
(`interval = 60 / requests_per_minute` after the previous one) and returns how long to wait
for it. Booking in one Lua script means two workers can never take the same slot. A 429 from
upstream pushes the next slot out (`penalize`), so our own budget slows down with theirs.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache

from django.conf import settings
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local ttl = math.ceil((tat + interval - now) * 1000) + 1000
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', ttl)
return tostring(tat - now)
"""

_PENALIZE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = now + tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < until_ then
  redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""


@lru_cache(maxsize=4)
def _redis(url: str):
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


class _LocalBuckets:
    """Per-process fallback for zero-config mode."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tat: dict[str, float] = {}

    def reserve(self, key: str, interval: float) -> float:
        with self.lock:
            now = time.monotonic()
            tat = max(self.tat.get(key, 0.0), now)
            self.tat[key] = tat + interval
            return tat - now

    def penalize(self, key: str, seconds: float) -> None:
        with self.lock:
            self.tat[key] = max(self.tat.get(key, 0.0), time.monotonic() + seconds)


_local = _LocalBuckets()


class RateLimiter:
    def __init__(self, name: str, per_minute: int, *, redis_url: str | None = None) -> None:
        self.key = f"kasparro:ratelimit:{name}"
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self.redis_url = settings.REDIS_URL if redis_url is None else redis_url

    def reserve(self) -> float:
        """Book the next slot; return the seconds to wait before using it."""
        if self.interval <= 0:
            return 0.0
        if self.redis_url:
            try:
                client = _redis(self.redis_url)
                return max(0.0, float(client.eval(_RESERVE, 1, self.key, self.interval)))
            except RedisError:
                # Redis down must not stop ingestion: keep to the limit in this process.
                logger.warning(
                    "rate limiter: Redis unavailable, limiting in-process", exc_info=True
                )
        return _local.reserve(self.key, self.interval)

    def acquire(self, sleep=time.sleep) -> float:
        wait = self.reserve()
        if wait > 0:
            sleep(wait)
        return wait

    def penalize(self, seconds: float) -> None:
        """Push the next free slot at least `seconds` into the future."""
        if seconds <= 0:
            return
        if self.redis_url:
            try:
                _redis(self.redis_url).eval(_PENALIZE, 1, self.key, seconds)
                return
            except RedisError:
                logger.warning("rate limiter: Redis unavailable, limiting in-process")
        _local.penalize(self.key, seconds)
