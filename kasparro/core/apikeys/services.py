"""Create, verify and revoke API keys."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from django.db import transaction
from django.utils import timezone

from kasparro.core.apikeys.models import APIKey
from kasparro.core.errors import ApplicationError

KEY_PREFIX = "kas"


def _digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _split(raw_key: str) -> str | None:
    parts = raw_key.split("_", 2)  # the secret part may itself contain "_"
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    return parts[1]


@transaction.atomic
def apikey_create(*, name: str, expires_at: dt.datetime | None = None) -> tuple[APIKey, str]:
    """Create a key; return the row and the plain key, which is never retrievable again."""
    if not name or len(name) > 100:
        raise ApplicationError("An API key needs a name of 1 to 100 characters.")
    if APIKey.objects.filter(name=name).exists():
        raise ApplicationError(f"An API key named {name!r} already exists.")
    prefix = secrets.token_hex(6)
    raw_key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = APIKey.objects.create(
        name=name, prefix=prefix, hashed_key=_digest(raw_key), expires_at=expires_at
    )
    return key, raw_key


def apikey_verify(*, raw_key: str) -> APIKey | None:
    """The active key matching `raw_key`, or None. Constant-time on the secret part."""
    prefix = _split(raw_key)
    if prefix is None:
        return None
    key = APIKey.objects.filter(prefix=prefix).first()
    if key is None or not hmac.compare_digest(key.hashed_key, _digest(raw_key)):
        return None
    if not key.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > dt.timedelta(minutes=1):
        APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


def apikey_revoke(*, name: str) -> APIKey:
    key = APIKey.objects.filter(name=name).first()
    if key is None:
        raise ApplicationError(f"No API key named {name!r}.")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key
