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

from django.db import connections, router
from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from crypto.models import Asset, DataVersion, SourceAsset

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
    concurrent page commits advance it one after the other: call it last)."""
    now = timezone.now()
    if not DataVersion.objects.filter(pk=ROW).update(number=F("number") + 1, changed_at=now):
        DataVersion.objects.get_or_create(pk=ROW, defaults={"number": 1, "changed_at": now})


def _changed(sender, **kwargs) -> None:
    if kwargs.get("raw"):  # fixtures being loaded
        return
    data_version_advance()


def connect_signals() -> None:
    """An asset's or an identity's ORM save or delete advances the version (CryptoConfig)."""
    for model in (Asset, SourceAsset):
        post_save.connect(_changed, sender=model, dispatch_uid=f"version-save-{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"version-delete-{model.__name__}")
