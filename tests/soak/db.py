"""The harness's own connection to the private database (psycopg, not Django), which rides
out the PostgreSQL restarts the chaos causes."""

from __future__ import annotations

import contextlib
import time

import psycopg

from tests.services import PrivatePostgres
from tests.soak.stack import DB_NAME


class Database:
    """One autocommit connection, opened again after a restart broke it."""

    def __init__(self, pg: PrivatePostgres) -> None:
        self.pg = pg
        self.connection: psycopg.Connection | None = None

    def rows(self, sql: str, params: tuple = (), patience: float = 30) -> list[tuple]:
        """The rows of one query, waiting up to `patience` seconds for the server."""
        deadline = time.monotonic() + patience
        while True:
            try:
                if self.connection is None or self.connection.closed:
                    self.connection = self.pg.connect(DB_NAME)
                return self.connection.execute(sql, params).fetchall()
            except (psycopg.OperationalError, psycopg.InterfaceError):
                self.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.connection.close()
            self.connection = None
