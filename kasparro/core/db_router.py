"""Reads on a read replica when one is configured (`DATABASE_REPLICA_URL`).

What goes where:
- the public API's and the dashboard's GET/HEAD requests read market data, news and run
  history from the replica (`ReplicaReadsMiddleware` marks them);
- everything else reads the primary: admin (operators read their own writes), the ETL
  (workers, beat, commands never pass through the middleware), every write, and the tables
  of authentication and scheduling even inside a marked request (a revoked key is refused at
  once, not after the replica catches up).

A replica lags by its replication delay (typically well under a second): a read on it may miss
the page an ETL run committed just now, never a half of one (PostgreSQL replicates whole
transactions). Without `DATABASE_REPLICA_URL` the router is not installed and the middleware
does nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from django.conf import settings

REPLICA = "replica"
# Apps whose rows are read on the primary even in a request marked for the replica.
PRIMARY_APPS = frozenset(
    {"apikeys", "auth", "sessions", "admin", "contenttypes", "django_celery_beat",
     "django_celery_results"}
)  # fmt: skip

_replica_reads: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "replica_reads", default=False
)


@contextlib.contextmanager
def replica_reads() -> Iterator[None]:
    """Reads inside go to the replica (where the router allows it)."""
    token = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(token)


class ReplicaRouter:
    def db_for_read(self, model, **hints) -> str | None:
        if _replica_reads.get() and model._meta.app_label not in PRIMARY_APPS:
            return REPLICA
        return None  # the primary

    def db_for_write(self, model, **hints) -> str:
        return "default"

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # the same data on both

    def allow_migrate(self, db, app_label, **hints) -> bool:
        return db == "default"  # the replica follows the primary's schema


class ReplicaReadsMiddleware:
    """Marks the public site's reads (GET/HEAD outside /admin/) for the replica."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if (
            REPLICA not in settings.DATABASES
            or request.method not in ("GET", "HEAD")
            or request.path.startswith("/admin/")
        ):
            return self.get_response(request)
        with replica_reads():
            return self.get_response(request)
