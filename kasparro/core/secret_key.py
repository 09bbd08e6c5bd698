"""Secret keys: a per-machine one for zero-config mode (generated once, kept out of the repo),
and the rule a deployment's key must pass."""

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


# Values seen in templates and tutorials; a key anyone can read signs nothing.
PLACEHOLDERS = ("change-me", "changeme", "change_me", "secret", "insecure", "replace-me", "xxx")
MIN_LENGTH = 50  # and 5 distinct characters: Django's own deploy check (security.W009)


def secret_key_problem(key: str) -> str:
    """Why `key` cannot sign a deployment's sessions and tokens, or "" when it can."""
    if len(key) < MIN_LENGTH:
        return f"it is {len(key)} characters long, under {MIN_LENGTH}"
    if len(set(key)) < 5:
        return "it has fewer than 5 distinct characters"
    lowered = key.lower()
    found = next((word for word in PLACEHOLDERS if word in lowered), None)
    if found:
        return f"it contains the placeholder {found!r}"
    return ""
