"""Writes that survive a lost database connection (a restart, a failover)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

DATABASE_ATTEMPTS = 6  # waits of about 0.5, 1, 2, 4 and 8 s: a restart of a few seconds


def database_retrying(
    write: Callable[[], Any], *, on_retry: Callable[[], None] | None = None
) -> Any:
    """Run `write` (a transaction of its own), again on a new connection when the database
    was lost (a restart, a failover), with exponential backoff and equal jitter (a wait drawn
    between half and all of the step). Inside a caller's transaction nothing can be retried:
    the error is raised as it is."""
    for attempt in range(DATABASE_ATTEMPTS):
        try:
            return write()
        except (OperationalError, InterfaceError):
            if attempt == DATABASE_ATTEMPTS - 1 or connection.in_atomic_block:
                raise
            pause = min(8.0, 0.5 * 2**attempt)
            pause = random.uniform(pause / 2, pause)  # noqa: S311 - jitter, not security
            logger.warning(
                "database unavailable; retrying", extra={"attempt": attempt + 1, "pause": pause}
            )
            connection.close()
            time.sleep(pause)
            if on_retry is not None:
                on_retry()
    raise AssertionError("unreachable")
