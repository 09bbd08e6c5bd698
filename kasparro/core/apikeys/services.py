"""Create, verify and revoke API keys.

A key verified against the database is also held in the cache's Redis for `HELD_SECONDS`
(its id, hash, expiry and name, under its prefix), so the next requests with it cost one
Redis read instead of a query; the secret is still checked against the hash at every request,
and the expiry against the clock. Any save or delete of a key (a revocation, an edit in the
admin, the admin's bulk revocation: `apikey_forget`) replaces what is held with a tombstone,
at once and again after the commit, for `FORGOTTEN_SECONDS`; a key that is not held, or is
tombstoned, is verified against the database, and only a verification that read the database
without a tombstone in place can hold it again (SET NX). So a revocation is refused at the
next request. Without Redis (zero-config), or when it cannot be reached, every request reads
the database. `last_used_at` is written at a verification against the database that finds it
more than a minute old: with a key held, it is at most a minute or two behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from kasparro.core.apikeys.models import APIKey
from kasparro.core.errors import ApplicationError
from kasparro.core.throttle import cache_namespace, cache_redis

logger = logging.getLogger(__name__)

KEY_PREFIX = "kas"
HELD_SECONDS = 60
FORGOTTEN_SECONDS = 600


def _digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _split(raw_key: str) -> str | None:
    parts = raw_key.split("_", 2)  # the secret part may itself contain "_"
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    return parts[1]


@transaction.atomic
def apikey_create(*, name: str, expires_at: dt.datetime | None = None) -> tuple[APIKey, str]:
    """Create a key; return the row and the plain key, which is never retrievable again."""
    if not name or len(name) > 100:
        raise ApplicationError("An API key needs a name of 1 to 100 characters.")
    if APIKey.objects.filter(name=name).exists():
        raise ApplicationError(f"An API key named {name!r} already exists.")
    prefix = secrets.token_hex(6)
    raw_key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = APIKey.objects.create(
        name=name, prefix=prefix, hashed_key=_digest(raw_key), expires_at=expires_at
    )
    return key, raw_key


def apikey_verify(*, raw_key: str) -> APIKey | None:
    """The active key matching `raw_key`, or None. Constant-time on the secret part. From what
    Redis holds of it when it holds it (see the module docstring), else from the database."""
    prefix = _split(raw_key)
    if prefix is None:
        return None
    digest = _digest(raw_key)
    held = _held(prefix)
    if held:  # neither missing nor a tombstone
        key = _from_record(prefix, held)
        return key if hmac.compare_digest(key.hashed_key, digest) and key.is_active else None
    key = APIKey.objects.filter(prefix=prefix).first()
    if key is None or not hmac.compare_digest(key.hashed_key, digest):
        return None
    if not key.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > dt.timedelta(minutes=1):
        APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
    if held is None:  # not a tombstone: hold it
        record = _record(key)
        _redis(lambda client: client.set(_record_key(prefix), record, nx=True, ex=HELD_SECONDS))
    return key


def apikey_forget(prefixes: Iterable[str]) -> None:
    """Replace what Redis holds of these keys with tombstones, now and after the commit (call
    it wherever keys change without a model signal, such as a queryset update)."""
    prefixes = list(prefixes)

    def bury() -> None:
        def call(client) -> None:
            pipe = client.pipeline(transaction=False)
            for prefix in prefixes:
                pipe.set(_record_key(prefix), "", ex=FORGOTTEN_SECONDS)
            pipe.execute()

        _redis(call)

    if prefixes:
        bury()
        transaction.on_commit(bury)


def _record_key(prefix: str) -> str:
    return f"{cache_namespace()}:apikey:{prefix}"


def _record(key: APIKey) -> str:
    expires = "" if key.expires_at is None else repr(key.expires_at.timestamp())
    return f"{key.pk}|{key.hashed_key}|{expires}|{key.name}"


def _from_record(prefix: str, record: str) -> APIKey:
    pk, hashed_key, expires, name = record.split("|", 3)
    expires_at = None if not expires else dt.datetime.fromtimestamp(float(expires), tz=dt.UTC)
    return APIKey(
        pk=int(pk), name=name, prefix=prefix, hashed_key=hashed_key, expires_at=expires_at
    )


def _held(prefix: str) -> str | None:
    """What Redis holds of the key: its record, "" for a tombstone, None for nothing (or no
    Redis, or Redis unreachable)."""
    value = _redis(lambda client: client.get(_record_key(prefix)))
    return None if value is None else value.decode()


def _redis(call):
    try:
        client = cache_redis()
        return None if client is None else call(client)
    except (RedisError, OSError) as exc:  # the database answers instead
        logger.warning("api keys: Redis unavailable: %r", exc)
        return None


def apikey_revoke(*, name: str) -> APIKey:
    key = APIKey.objects.filter(name=name).first()
    if key is None:
        raise ApplicationError(f"No API key named {name!r}.")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key
