"""Private PostgreSQL and Redis servers that a test (or the soak) may restart, stop or kill.

Each one lives in its own temporary folder, on a free port bound to 127.0.0.1, and is destroyed
afterwards: the suite's shared database and Redis are never the ones broken. Used by
`tests/test_outages.py` and by the soak harness (`tests/soak/`).

PostgreSQL refuses to run as root: when we are root its binaries run as `postgres` through
`runuser`. Nothing here imports Django, so the soak's own process stays free of settings.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support import free_port

if TYPE_CHECKING:
    import psycopg


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited after `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


# --- PostgreSQL ---------------------------------------------------------------------------------


class PrivatePostgres:
    """A throw-away PostgreSQL cluster in a temporary folder, on its own port and socket dir.

    Run as `postgres` through runuser when we are root (the server refuses to run as root),
    directly otherwise."""

    def __init__(self, bindir: Path, runuser: str | None) -> None:
        self.bindir = bindir
        self.runuser = runuser
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="kasparro-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.started = False
        if runuser:
            shutil.chown(self.root, user="postgres", group="postgres")

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.runuser:
            command = [self.runuser, "-u", "postgres", "--", *command]
        return subprocess.run(
            command,
            cwd=self.root,  # readable by postgres, unlike the caller's working directory
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _check(self, done: subprocess.CompletedProcess) -> None:
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise AssertionError(
                f"{done.args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}\n{log}"
            )

    def _server_options(self) -> str:
        return (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=60"
        )

    def _pg_ctl(self, *args: str) -> None:
        self._check(self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "30", *args))

    def init(self) -> None:
        flags = ["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"]
        self._check(self._run("initdb", "-D", str(self.data), *flags))

    def start(self) -> None:
        self._pg_ctl("-l", str(self.log), "-o", self._server_options(), "start")
        self.started = True

    def restart(self) -> None:
        """Fast restart: every open connection is terminated, committed data survives."""
        self._pg_ctl("-l", str(self.log), "-o", self._server_options(), "-m", "fast", "restart")

    def stop(self) -> None:
        """Fast shutdown: open connections are terminated, new ones refused until `start`."""
        self._pg_ctl("-m", "fast", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres", *, autocommit: bool = True) -> psycopg.Connection:
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname=database,
            autocommit=autocommit,
            connect_timeout=5,
        )

    def destroy(self) -> None:
        try:
            if self.started or (self.data / "postmaster.pid").exists():
                stop = ["-D", str(self.data), "-m", "immediate", "-w", "-t", "20", "stop"]
                done = self._run("pg_ctl", *stop, timeout=40)
                pid_file = self.data / "postmaster.pid"
                if done.returncode != 0 and pid_file.exists():
                    with contextlib.suppress(ValueError, IndexError, ProcessLookupError):
                        os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
                        time.sleep(1)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def postgres_bindir() -> Path | None:
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl and (Path(pg_ctl).resolve().parent / "initdb").exists():
        return Path(pg_ctl).resolve().parent
    return None


def postgres_missing() -> str | None:
    """Why a private PostgreSQL cannot be started here, or None when it can."""
    if postgres_bindir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root and `runuser` is not available to run PostgreSQL"
    return None


def new_private_postgres() -> PrivatePostgres:
    """An initialised, started private cluster; the caller must `destroy()` it."""
    missing = postgres_missing()
    if missing:
        raise RuntimeError(missing)
    runuser = shutil.which("runuser") if os.geteuid() == 0 else None
    server = PrivatePostgres(postgres_bindir(), runuser)
    try:
        server.init()
        server.start()
    except BaseException:
        server.destroy()
        raise
    return server


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """For tests: a private cluster for the block, skipping the test where none can run."""
    missing = postgres_missing()
    if missing:
        import pytest

        pytest.skip(missing)
    server = new_private_postgres()
    try:
        yield server
    finally:
        server.destroy()


# --- Redis --------------------------------------------------------------------------------------


def redis_missing() -> str | None:
    return None if shutil.which("redis-server") else "redis-server is not installed"


class PrivateRedis:
    """redis-server on a free port, its data in a temporary folder, persisted like the compose
    file's redis (`--appendonly yes`, fsync every second), so a restart keeps queued tasks."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="kasparro-redis-"))
        self.log = self.root / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed")
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "no"]
        options += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [server, *options, "--dir", str(self.root)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the caller must not reach it
            )
        self.wait_until_up(timeout)

    def wait_until_up(self, timeout: float = 15) -> None:
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process is None or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited at start:\n{self.log.read_text()}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not come up:\n{self.log.read_text()}")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = 10) -> None:
        """Graceful shutdown: redis writes its append-only file before it exits."""
        if self.process is not None:
            stop_process(self.process, timeout)

    def kill(self) -> None:
        """SIGKILL: at most the last second of writes is lost (appendfsync everysec)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def destroy(self) -> None:
        try:
            self.kill()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """For tests: a private Redis for the block, skipping the test where none can run."""
    missing = redis_missing()
    if missing:
        import pytest

        pytest.skip(missing)
    server = PrivateRedis()
    try:
        server.start()
        yield server
    finally:
        server.destroy()
