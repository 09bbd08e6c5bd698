"""The data version: one counter for "what the API shows has changed".

`data_version_advance()` is called inside the transaction that makes the change, so a reader
sees the new number exactly when it sees the new data (never before: a response computed from
old rows is never cached under the new number). Readers read the version first, then the
data: a commit between the two caches fresher data under the older number, which the next
request replaces.

Who advances it: the page transaction (`etl.pipeline.page.process_page`, which every ingestion
and replay goes through), `runs.services` (a run started, finished, skipped, failed by the
reaper; runs deleted by retention), checkpoint rewinds and resets, and every save or delete of
an asset or an identity through the ORM (admin edits: the signals below). Bulk writes of the
ETL send no signals; their page transaction advances it once. Quotes and articles have no
signal on purpose: one would cost Django its fast delete (every quote of a deleted asset
fetched to be signalled); their admin is read-only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from django.db import connections, router, transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from redis.exceptions import RedisError

from crypto.models import Asset, DataVersion, SourceAsset
from kasparro.core.throttle import cache_namespace, cache_redis

logger = logging.getLogger(__name__)

ROW = 1


@dataclasses.dataclass(frozen=True)
class Version:
    number: int
    changed_at: dt.datetime


def data_version(*, using: str | None = None) -> Version:
    """The current version: one indexed read of one row (on the database reads go to, unless
    `using` names one). A database that cannot be reached raises its DatabaseError."""
    db = using or router.db_for_read(DataVersion)
    with connections[db].cursor() as cursor:
        cursor.execute("SELECT number, changed_at FROM crypto_dataversion WHERE id = %s", [ROW])
        row = cursor.fetchone()
    if row is None:  # only before the first change (the migration creates the row)
        return Version(0, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    number, changed_at = row
    if isinstance(changed_at, str):  # SQLite through a raw cursor
        changed_at = dt.datetime.fromisoformat(changed_at)
    if timezone.is_naive(changed_at):
        changed_at = changed_at.replace(tzinfo=dt.UTC)
    return Version(number, changed_at)


def data_version_advance() -> None:
    """Advance the version in the caller's transaction (the row stays locked until it ends, so
    concurrent page commits advance it one after the other: call it last), and tell the
    cache's Redis (`version_publish`): the copy there is dropped now and the new number
    published once the transaction commits."""
    now = timezone.now()
    db = router.db_for_write(DataVersion)
    connection = connections[db]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE crypto_dataversion SET number = number + 1, changed_at = %s WHERE id = %s "
            "RETURNING number",
            [connection.ops.adapt_datetimefield_value(now), ROW],
        )
        row = cursor.fetchone()
    if row is None:
        DataVersion.objects.get_or_create(pk=ROW, defaults={"number": 1, "changed_at": now})
        row = (DataVersion.objects.get(pk=ROW).number,)
    version = Version(row[0], now)
    _redis_call(lambda client, key: client.delete(key))
    transaction.on_commit(lambda: version_publish(version), using=db)


# The version is also kept in the cache's Redis, so that a cached answer is found with its
# version in the throttles' one round trip (crypto.response_cache): never ahead of the
# database (published after the commit; a lower number never replaces a higher one), and
# short-lived, so that a process that died between its commit and its publication leaves the
# copy wrong for at most this long. Without Redis the database is read every time.
VERSION_SECONDS = 1.0
_PUBLISH = """
local held = redis.call('GET', KEYS[1])
if held and tonumber(string.match(held, '^(%d+)')) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'PX', ARGV[3])
return 1
"""


def version_key() -> str:
    return f"{cache_namespace()}:data-version"


def version_parse(value: bytes) -> Version:
    number, _, stamp = value.decode().partition(":")
    return Version(int(number), dt.datetime.fromtimestamp(float(stamp), tz=dt.UTC))


def version_publish(version: Version) -> None:
    """Put `version` in the cache's Redis for `VERSION_SECONDS`, unless a higher one is there."""
    _redis_call(
        lambda client, key: client.eval(
            _PUBLISH,
            1,
            key,
            version.number,
            repr(version.changed_at.timestamp()),
            int(VERSION_SECONDS * 1000),
        )
    )


def _redis_call(call) -> None:
    try:
        client = cache_redis()
        if client is not None:
            call(client, version_key())
    except (RedisError, OSError) as exc:  # the copy expires by itself; the database is right
        logger.warning("data version: Redis unavailable: %r", exc)


def _changed(sender, **kwargs) -> None:
    if kwargs.get("raw"):  # fixtures being loaded
        return
    data_version_advance()


def connect_signals() -> None:
    """An asset's or an identity's ORM save or delete advances the version (CryptoConfig)."""
    for model in (Asset, SourceAsset):
        post_save.connect(_changed, sender=model, dispatch_uid=f"version-save-{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"version-delete-{model.__name__}")
