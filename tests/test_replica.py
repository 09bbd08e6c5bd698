"""The read-replica router under Django's test mirror: tests/replica_checks.py, run in a
process whose settings name a replica (settings are read once per process)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support import PYTHON, ROOT

pytestmark = pytest.mark.slow


def test_reads_of_the_public_site_go_to_the_replica_and_the_rest_to_the_primary():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    primary = os.environ.get("DATABASE_URL", "")
    if primary.startswith("postgres"):
        # Its own database: this suite's test database is in use by this process.
        primary = primary.rsplit("/", 1)[0] + "/kasparro_replica_checks"
        env["DATABASE_URL"] = primary
    env["DATABASE_REPLICA_URL"] = primary or "sqlite:///unused-the-replica-mirrors-default"
    done = subprocess.run(
        [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/replica_checks.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
