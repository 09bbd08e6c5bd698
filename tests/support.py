"""Helpers for tests that start real processes (CLI, Celery worker, pytest itself)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


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
