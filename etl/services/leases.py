"""A run's exclusive claim on a source: one holder at a time, death noticed in seconds.

The claim is the `SourceLease` row of the source: its `holder` is the record of who owns the
source and the fencing token (every page transaction proves it before it commits, so a run
that lost its claim can never commit a page). While the holder's process lives, a heartbeat
thread renews the row every `heartbeat_seconds()`; a holder that dies stops renewing and its
row expires `ETL_LEASE_SECONDS` after its last beat. How a claimant tells a dead holder from
a live one:

- PostgreSQL: the heartbeat's own connection holds a session-level advisory lock on the source.
  The server drops it the moment a dead process's connection goes, so whoever gets the lock
  knows that no live process holds the source and takes the row over at once, whatever its
  expiry says. A claimant that cannot get the lock has met a live holder.
- SQLite (zero-config): the row only. A free or expired row is taken; a row held by an earlier
  attempt of the same Celery task (a redelivery after its worker died) is taken over; else the
  claimant watches the row for a beat and a half: a holder whose heartbeat moves is alive and
  the claim fails; one whose heartbeat stopped is dead, and its row is waited out (it expires
  within `ETL_LEASE_SECONDS`). A page transaction must stay shorter than the lease here: it
  holds SQLite's one write lock, which the heartbeat also needs.

Inside a caller's transaction (the suite's non-transactional tests) nothing the claim writes is
visible to other connections until that transaction ends, so a heartbeat thread could neither
see nor renew the row: the claim is then kept by its page transactions alone.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from etl.exceptions import LeaseLostError
from etl.models import SourceLease
from etl.services.database import database_retrying
from runs.models import Run

logger = logging.getLogger(__name__)


def heartbeat_seconds() -> float:
    """How often a live claim is renewed: several beats fit in one lease."""
    return max(0.5, min(10.0, settings.ETL_LEASE_SECONDS / 6))


def _advisory_key(source: str) -> int:
    digest = hashlib.blake2b(f"kasparro.source:{source}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class SourceBusy(Exception):
    """A live holder has the source."""

    def __init__(self, source: str, holder: uuid.UUID | None) -> None:
        super().__init__(f"another run of {source} holds it (run {holder})")
        self.source = source
        self.holder = holder


class SourceClaim:
    """Acquire with `acquire()`, prove in each page transaction with `prove()`, end with
    `release()`; or use `source_claimed()`."""

    def __init__(self, *, source: str, holder: uuid.UUID, task_id: str = "") -> None:
        self.source = source
        self.holder = holder
        self.task_id = task_id
        self.lease_seconds = settings.ETL_LEASE_SECONDS
        self.busy_holder: uuid.UUID | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._acquired = False
        self._error: BaseException | None = None  # what stopped the claim being taken
        self._thread: threading.Thread | None = None
        self._locked_on = None  # the raw connection holding the advisory lock, if any

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    # --- acquire -------------------------------------------------------------------------------

    def acquire(self) -> bool:
        """Take the source; False when a live holder has it (see `busy_holder`)."""
        if connection.in_atomic_block:
            self._acquired = self._take_row(advisory=False, watch=False)
            return self._acquired
        context = contextvars.copy_context()  # log lines keep the run's tags
        self._thread = threading.Thread(
            target=context.run, args=(self._heartbeat,), name="etl-claim", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error  # the database was unreachable, say: a failure, not a busy source
        return self._acquired

    def _take_row(self, *, advisory: bool, watch: bool = True) -> bool:
        """Apply the rules of the module docstring to the row; True when it is now ours.
        `watch`: tell a live holder from a dead one by whether its heartbeat moves (there is
        no heartbeat to watch inside a caller's transaction: an unexpired row is then live)."""
        with contextlib.suppress(IntegrityError), transaction.atomic():
            SourceLease.objects.get_or_create(source=self.source)
        watched: tuple[uuid.UUID | None, dt.datetime | None] | None = None
        watch_until = 0.0
        while True:
            now = timezone.now()
            lease = SourceLease.objects.get(source=self.source)
            previous = lease.holder
            if previous is None or advisory:
                pass  # free, or the advisory lock proves its holder dead
            elif lease.expires_at is None or lease.expires_at < now:
                pass  # expired: its holder stopped beating a lease ago
            elif self.task_id and self._holder_task(previous) == self.task_id:
                pass  # our own earlier attempt, redelivered after its worker died
            elif not watch or (watched is not None and watched != (previous, lease.renewed_at)):
                self.busy_holder = previous  # its heartbeat moved: alive
                return False
            else:
                if watched is None:  # watch for one beat and a half
                    watched = (previous, lease.renewed_at)
                    watch_until = time.monotonic() + 1.5 * heartbeat_seconds()
                if time.monotonic() < watch_until:
                    time.sleep(min(0.5, heartbeat_seconds() / 4))
                else:  # no beat: its process died; wait the lease out (bounded by its expiry)
                    left = (lease.expires_at - now).total_seconds()
                    if watch_until:
                        logger.info(
                            "waiting for a dead run's claim to expire",
                            extra={"source": self.source, "holder": str(previous), "left": left},
                        )
                        watch_until = 0.0
                    time.sleep(max(0.05, min(heartbeat_seconds(), left)))
                continue
            taken = SourceLease.objects.filter(source=self.source, holder=previous).update(
                holder=self.holder,
                expires_at=now + dt.timedelta(seconds=self.lease_seconds),
                renewed_at=now,
            )
            if taken:
                return True
            # Another claimant changed the row meanwhile: look again.

    @staticmethod
    def _holder_task(holder: uuid.UUID) -> str:
        return Run.objects.filter(pk=holder).values_list("task_id", flat=True).first() or ""

    # --- heartbeat (its own thread and connection) ---------------------------------------------

    def _heartbeat(self) -> None:
        advisory = connection.vendor == "postgresql"
        try:
            if advisory and not self._lock():
                self.busy_holder = (
                    SourceLease.objects.filter(source=self.source)
                    .values_list("holder", flat=True)
                    .first()
                )
                return
            self._acquired = self._take_row(advisory=advisory)
            if not self._acquired:
                return
            self._ready.set()
            pause = heartbeat_seconds()
            while not self._stop.wait(pause):
                pause = heartbeat_seconds()
                try:
                    if advisory and not self._lock():
                        raise LeaseLostError(f"another process holds {self.source}")
                    if not self._renew():
                        raise LeaseLostError(f"another run took over {self.source}")
                except LeaseLostError as exc:
                    logger.error("claim lost", extra={"source": self.source, "error": str(exc)})
                    self._lost.set()
                    return
                except DatabaseError:
                    # The database went away (a restart): beat again soon on a new connection,
                    # taking the advisory lock again, before the lease can run out.
                    logger.warning("heartbeat failed; retrying", extra={"source": self.source})
                    connection.close()
                    pause = min(1.0, pause)
        except Exception as exc:
            if not self._ready.is_set():
                self._error = exc
            else:
                logger.exception("claim heartbeat crashed", extra={"source": self.source})
            self._lost.set()
        finally:
            self._ready.set()
            with contextlib.suppress(Exception):
                connection.close()  # also drops the advisory lock

    def _lock(self) -> bool:
        """Take (or confirm) the session's advisory lock; re-entrant on one connection."""
        if self._locked_on is not None and self._locked_on is connection.connection:
            return True
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [_advisory_key(self.source)])
            got = bool(cursor.fetchone()[0])
        self._locked_on = connection.connection if got else None
        return got

    def _renew(self) -> bool:
        now = timezone.now()
        renewed = SourceLease.objects.filter(source=self.source, holder=self.holder).update(
            expires_at=now + dt.timedelta(seconds=self.lease_seconds), renewed_at=now
        )
        if renewed:
            Run.objects.filter(pk=self.holder, status=Run.Status.RUNNING).update(heartbeat_at=now)
        return bool(renewed)

    # --- fencing and release -------------------------------------------------------------------

    def prove(self) -> None:
        """Fencing: call in the page transaction, just before it commits. Renews the row (its
        lock then keeps everyone else off it until the commit) or raises LeaseLostError."""
        if self.lost or not self._renew():
            raise LeaseLostError(f"lost the claim on {self.source}: another run took over")

    def release(self) -> None:
        """Stop the heartbeat (dropping the advisory lock) and free the row if still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._acquired:
            SourceLease.objects.filter(source=self.source, holder=self.holder).update(
                holder=None, expires_at=None, renewed_at=None
            )
            self._acquired = False


@contextlib.contextmanager
def source_claimed(
    *, source: str, holder: uuid.UUID | None = None, task_id: str = ""
) -> Iterator[SourceClaim]:
    """Hold the source for the block; raise SourceBusy when a live holder has it. The one way
    to hold a source (ingestion, replays, checkpoint changes). Releasing survives a lost
    database connection; if even that fails, the claim simply expires (ETL_LEASE_SECONDS)."""
    claim = SourceClaim(source=source, holder=holder or uuid.uuid4(), task_id=task_id)
    if not claim.acquire():
        raise SourceBusy(source, claim.busy_holder)
    try:
        yield claim
    finally:
        try:
            database_retrying(claim.release)
        except Exception:
            logger.exception(
                "could not release the claim; it will expire", extra={"source": source}
            )


def source_claim_holder(*, source: str) -> uuid.UUID | None:
    """Who holds the source right now (a live or not yet expired claim), if anyone."""
    held = SourceLease.objects.filter(
        source=source, holder__isnull=False, expires_at__gt=timezone.now()
    )
    return held.values_list("holder", flat=True).first()
