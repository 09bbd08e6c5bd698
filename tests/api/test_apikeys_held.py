"""API keys held in the cache's Redis (kasparro.core.apikeys.services): a request with a key
that was verified costs no query, and whatever changes a key (a revocation, the admin's bulk
revocation, an expiry, a wrong secret) is refused at the very next request."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from kasparro.core.apikeys import services
from kasparro.core.apikeys.models import APIKey
from kasparro.core.apikeys.services import apikey_create, apikey_revoke, apikey_verify
from kasparro.core.throttle import REDIS_CACHE

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def redis_cache(settings):
    if settings.CACHES["default"]["BACKEND"] != REDIS_CACHE:
        pytest.skip("no Redis cache: REDIS_URL is not set (without it every request reads the key)")


def keyed(key: str) -> dict:
    return {"HTTP_X_API_KEY": key}


def test_a_held_key_costs_no_query_and_is_held_for_the_shipped_minute(client, settings):
    row, key = apikey_create(name="held")
    assert client.get("/runs", **keyed(key)).status_code == 200  # verified, held, computed
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/runs", **keyed(key)).status_code == 200  # held key, stored answer
    assert len(queries) == 0, queries.captured_queries
    assert services.HELD_SECONDS == 60
    import redis

    client_ = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    ttl = client_.ttl(f"{settings.CACHES['default']['KEY_PREFIX']}:apikey:{row.prefix}")
    assert 55 <= ttl <= 60


def test_a_wrong_secret_for_a_held_key_is_refused(client):
    row, key = apikey_create(name="held")
    assert client.get("/runs", **keyed(key)).status_code == 200
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert client.get("/runs", **keyed(wrong)).status_code == 401
    assert apikey_verify(raw_key=wrong) is None and apikey_verify(raw_key=key).pk == row.pk


def test_a_revocation_is_refused_at_the_next_request_and_not_held_again(client, settings):
    row, key = apikey_create(name="held")
    assert client.get("/runs", **keyed(key)).status_code == 200
    apikey_revoke(name="held")
    for _ in range(3):
        assert client.get("/runs", **keyed(key)).status_code == 401
    import redis

    held = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    name = f"{settings.CACHES['default']['KEY_PREFIX']}:apikey:{row.prefix}"
    assert held.get(name) == b"" and 590 <= held.ttl(name) <= 600  # a tombstone, as shipped
    assert services.FORGOTTEN_SECONDS == 600
    # Restored (an operator clears revoked_at): the database says so at once.
    restored = APIKey.objects.get(name="held")
    restored.revoked_at = None
    restored.save()
    assert client.get("/runs", **keyed(key)).status_code == 200


def test_the_admins_bulk_revocation_is_refused_at_the_next_request(client, admin_client):
    row, key = apikey_create(name="held")
    assert client.get("/runs", **keyed(key)).status_code == 200
    answer = admin_client.post(
        reverse("admin:apikeys_apikey_changelist"),
        {"action": "revoke", "_selected_action": [row.pk]},
    )
    assert answer.status_code == 302
    assert APIKey.objects.get(pk=row.pk).revoked_at is not None
    assert client.get("/runs", **keyed(key)).status_code == 401


def test_an_expiry_reached_while_held_is_refused(client):
    _, key = apikey_create(name="held", expires_at=timezone.now() + dt.timedelta(seconds=2))
    assert client.get("/runs", **keyed(key)).status_code == 200
    time.sleep(2.1)
    assert client.get("/runs", **keyed(key)).status_code == 401


def test_a_deleted_key_is_refused_at_the_next_request(client):
    row, key = apikey_create(name="held")
    assert client.get("/runs", **keyed(key)).status_code == 200
    row.delete()
    assert client.get("/runs", **keyed(key)).status_code == 401
