"""Helpers for tests that start real processes (CLI, Celery worker, pytest itself)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@contextlib.contextmanager
def celery_eager() -> Iterator[None]:
    """Celery tasks run in place for the block. Through Django's settings, which Celery reads
    first (its own `app.conf` changes lose to a CELERY_* Django setting); tasks registered as in
    a worker, so that tasks sent by name resolve to them."""
    from django.test import override_settings

    import etl.tasks  # noqa: F401

    with override_settings(CELERY_TASK_ALWAYS_EAGER=True):
        yield


def database_url(name: str | None = None) -> str:
    """A DATABASE_URL for the database the tests use right now (the test database)."""
    s = connection.settings_dict
    name = name or s["NAME"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{name}"
    auth = quote(s["USER"] or "")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"])
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{name}"


def process_env(**overrides: str) -> dict[str, str]:
    """The environment of a child process that talks to the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DATABASE_URL=database_url(),
        DJANGO_SETTINGS_MODULE="kasparro.settings",
        KASPARRO_TESTING="1",
        PYTHONPATH=str(ROOT),
    )
    env.update(overrides)
    return env


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(env: dict[str, str], *, workers: int = 2) -> Iterator[str]:
    """The app under gunicorn (our deploy config) on a free port; yields its base URL once
    /health answers, and stops the whole process group afterwards."""
    port = free_port()
    server = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "gunicorn",
            "kasparro.wsgi:application",
            "-c",
            "deploy/gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--access-logfile",
            "/dev/null",
        ],
        cwd=ROOT,
        env={"PORT": str(port), **env},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)  # noqa: S310
                break
            except OSError:
                time.sleep(0.2)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """`python manage.py ...` in a child process; its output captured."""
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclasses.dataclass
class Worker:
    process: subprocess.Popen
    queue: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def celery_worker(
    env: dict[str, str], *, concurrency: int = 1, queue: str | None = None
) -> Iterator[Worker]:
    """A real prefork Celery worker (as deployed) on a queue of its own, which is also its
    default queue, so what it enqueues itself (retries, the reaper's recovery) comes back to it.
    Stopped with its whole process group afterwards."""
    queue = queue or f"test-{uuid.uuid4().hex[:8]}"
    log_path = Path(tempfile.mkstemp(prefix="kasparro-worker-", suffix=".log")[1])
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "kasparro",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "INFO",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env={**env, "CELERY_TASK_DEFAULT_QUEUE": queue},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Worker(process, queue, log_path)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log_path.unlink(missing_ok=True)
