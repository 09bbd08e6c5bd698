"""A per-machine secret key for zero-config mode, generated once and kept out of the repo."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path


def local_secret_key(path: Path) -> str:
    """Read the key, or create it atomically: concurrent first starts all get the same key."""
    for _ in range(50):
        try:
            key = path.read_text().strip()
        except FileNotFoundError:
            key = ""
        if key:
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f".{path.name}.{os.getpid()}")
        candidate.write_text(secrets.token_urlsafe(50))
        candidate.chmod(0o600)
        try:
            os.link(candidate, path)  # atomic; fails if another process won the race
        except FileExistsError:
            pass
        finally:
            candidate.unlink(missing_ok=True)
        time.sleep(0.01)
    raise RuntimeError(f"could not read or create the secret key file {path}")
