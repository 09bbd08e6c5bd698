"""The API's rate limits (kasparro.core.throttle): exactly the configured rate per client address
and per API key, one Redis round trip for both, wrong credentials throttled by address, fail
open when Redis is down.

Most tests run twice: on the cache's Redis (skipped when REDIS_URL is not set) and on the
in-process windows of zero-config mode (always, also when REDIS_URL is set).
"""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
from rest_framework.throttling import SimpleRateThrottle

from kasparro.core.apikeys.services import apikey_create
from kasparro.core.throttle import REDIS_CACHE, Rate, rate_parse, throttle_charge

pytestmark = pytest.mark.django_db

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture(params=["redis", "local"])
def store(request, settings) -> str:
    """Where the counts live: the cache's Redis, or this process (a locmem cache)."""
    if request.param == "redis":
        if settings.CACHES["default"]["BACKEND"] != REDIS_CACHE:
            pytest.skip("no Redis cache: REDIS_URL is not set")
        yield "redis"
        return
    original = settings.CACHES
    settings.CACHES = LOCMEM
    yield "local"
    # Before the suite's teardown, which cleans up the cache it set up.
    settings.CACHES = original


@pytest.fixture
def redis_client(settings):
    if settings.CACHES["default"]["BACKEND"] != REDIS_CACHE:
        pytest.skip("no Redis cache: REDIS_URL is not set")
    import redis

    client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    yield client
    client.close()


def new_key(name: str) -> str:
    return apikey_create(name=name)[1]


def codes(client, n: int, path: str = "/assets", **headers) -> list[int]:
    return [client.get(path, **headers).status_code for _ in range(n)]


# --- the rate, exactly ----------------------------------------------------------------------


@pytest.mark.parametrize("rate", ["600/min", "3/s", "3/sec", "10/hour", "5/day", "1/m", None])
def test_rates_are_read_as_drf_reads_them(rate):
    parsed = rate_parse(rate)
    got = (parsed.requests, parsed.seconds) if parsed else (None, None)
    assert got == SimpleRateThrottle.parse_rate(None, rate)
    if rate == "600/min":
        assert parsed == Rate(requests=600, seconds=60)


def test_exactly_the_rate_passes_and_the_next_is_a_429_json_with_retry_after(
    store, client, settings
):
    settings.API_RATE_PER_ADDRESS = "3/min"
    assert codes(client, 3) == [200, 200, 200]
    response = client.get("/assets")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert (body["error"]["status"], body["error"]["code"]) == (429, "throttled")
    assert body["request_id"]


def test_addresses_are_counted_apart(store, client, settings):
    settings.API_RATE_PER_ADDRESS = "3/min"
    assert codes(client, 4, REMOTE_ADDR="10.0.0.1") == [200, 200, 200, 429]
    assert codes(client, 4, REMOTE_ADDR="10.0.0.2") == [200, 200, 200, 429]


def test_keys_from_one_address_are_counted_apart(store, client, settings):
    settings.API_RATE_PER_ADDRESS = "1000/min"
    settings.API_RATE_PER_KEY = "3/min"
    first, second = new_key("first"), new_key("second")
    assert codes(client, 4, "/stats", HTTP_X_API_KEY=first) == [200, 200, 200, 429]
    assert codes(client, 4, "/stats", HTTP_X_API_KEY=second) == [200, 200, 200, 429]
    assert codes(client, 1) == [200], "the address has room: only the keys are spent"


def test_one_key_from_two_addresses_is_counted_once(store, client, settings):
    settings.API_RATE_PER_ADDRESS = "1000/min"
    settings.API_RATE_PER_KEY = "3/min"
    key = new_key("roaming")
    assert codes(client, 2, "/stats", HTTP_X_API_KEY=key, REMOTE_ADDR="10.0.0.1") == [200] * 2
    assert codes(client, 2, "/stats", HTTP_X_API_KEY=key, REMOTE_ADDR="10.0.0.2") == [200, 429]
    response = client.get("/stats", HTTP_X_API_KEY=key, REMOTE_ADDR="10.0.0.3")
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1


def test_the_window_slides(store, client, settings):
    settings.API_RATE_PER_ADDRESS = "3/s"
    assert codes(client, 4) == [200, 200, 200, 429]
    time.sleep(1.05)
    assert codes(client, 4) == [200, 200, 200, 429]


def test_an_address_refusal_charges_nothing_to_the_key(store, settings):
    settings.API_RATE_PER_ADDRESS = "2/min"
    settings.API_RATE_PER_KEY = "3/min"
    charged = [throttle_charge(address="10.0.0.1", key_prefix="k1") for _ in range(4)]
    assert charged[:2] == [None, None] and None not in charged[2:]
    # The key was charged twice, not four times: one more request passes from elsewhere.
    assert throttle_charge(address="10.0.0.2", key_prefix="k1") is None
    assert throttle_charge(address="10.0.0.3", key_prefix="k1") is not None


def test_a_key_refusal_still_charges_the_address(store, settings):
    settings.API_RATE_PER_ADDRESS = "3/min"
    settings.API_RATE_PER_KEY = "1/min"
    charged = [throttle_charge(address="10.0.0.1", key_prefix="k1") for _ in range(3)]
    assert charged[0] is None and None not in charged[1:]
    # Three requests charged to the address: another key from it is refused by the address.
    assert throttle_charge(address="10.0.0.1", key_prefix="k2") is not None
    assert throttle_charge(address="10.0.0.2", key_prefix="k2") is None


def test_concurrent_requests_never_pass_more_than_the_rate(store, settings):
    settings.API_RATE_PER_ADDRESS = "100/min"
    passed = []

    def hammer():
        for _ in range(20):
            if throttle_charge(address="10.0.0.9") is None:
                passed.append(1)

    threads = [threading.Thread(target=hammer) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(passed) == 100


# --- credentials ----------------------------------------------------------------------------


def test_wrong_credentials_are_throttled_by_address(store, client, settings):
    settings.API_RATE_PER_ADDRESS = "3/min"
    sent = [client.get("/stats", HTTP_X_API_KEY=f"kas_wrong{n}_secret") for n in range(5)]
    assert [r.status_code for r in sent] == [401, 401, 401, 429, 429]
    assert sent[-1].json()["error"]["code"] == "throttled"
    assert int(sent[-1]["Retry-After"]) >= 1
    # A malformed Authorization header and no key at all are charged to the address too.
    assert client.get("/stats", HTTP_AUTHORIZATION="Token a b").status_code == 429
    assert client.get("/stats").status_code == 429
    assert client.get("/stats", REMOTE_ADDR="10.0.0.7").status_code == 401


def test_a_missing_key_on_a_token_endpoint_is_charged_before_its_401(store, client, settings):
    settings.API_RATE_PER_ADDRESS = "2/min"
    assert codes(client, 3, "/stats") == [401, 401, 429]


def test_a_request_refused_before_any_check_is_charged_too(store, client, settings):
    """Refused for what it asks (a 406), it is still charged: every request counts."""
    settings.API_RATE_PER_ADDRESS = "2/min"
    assert codes(client, 2, HTTP_ACCEPT="image/png") == [406, 406]
    assert codes(client, 1) == [429]


# --- the shipped rates ----------------------------------------------------------------------


def test_the_shipped_rates_are_600_per_minute_per_address_and_3000_per_key(store, settings, client):
    for name, shipped in (("API_RATE_PER_ADDRESS", "600/min"), ("API_RATE_PER_KEY", "3000/min")):
        if name in os.environ:
            pytest.skip(f"{name} is set in the environment")
        assert getattr(settings, name) == shipped
    assert [throttle_charge(address="127.0.0.1") for _ in range(600)] == [None] * 600
    wait = throttle_charge(address="127.0.0.1")
    assert wait is not None and 1 <= wait <= 60
    # The view charges the same bucket at the same rate.
    response = client.get("/assets")
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 60

    # 3000 per key, from ten addresses (300 each, under their own limit).
    charged = [throttle_charge(address=f"10.1.0.{n % 10}", key_prefix="k") for n in range(3000)]
    assert charged == [None] * 3000
    assert throttle_charge(address="10.1.0.99", key_prefix="k") is not None


# --- one round trip -------------------------------------------------------------------------


@pytest.fixture
def sent_commands(monkeypatch) -> list[tuple[str, ...]]:
    """Every command any redis-py client of this process sends, as strings."""
    from redis.connection import AbstractConnection

    sent: list[tuple[str, ...]] = []
    send_command, pack_commands = AbstractConnection.send_command, AbstractConnection.pack_commands

    def text(args) -> tuple[str, ...]:
        return tuple(a.decode(errors="replace") if isinstance(a, bytes) else str(a) for a in args)

    def one(self, *args, **kwargs):
        sent.append(text(args))
        return send_command(self, *args, **kwargs)

    def many(self, commands):
        sent.extend(text(args) for args in commands)
        return pack_commands(self, commands)

    monkeypatch.setattr(AbstractConnection, "send_command", one)
    monkeypatch.setattr(AbstractConnection, "pack_commands", many)
    return sent


def test_both_limits_cost_one_redis_round_trip(client, settings, redis_client, sent_commands):
    """One EVALSHA per request, and no other command about the throttle: DRF's throttles sent
    a GET and a SET of their history per throttle. (Server-wide `INFO commandstats` is not
    used: other suites may share the server.)"""
    row, key = apikey_create(name="counted")
    client.get("/stats", HTTP_X_API_KEY=key)  # loads the script and connects
    for headers in ({"HTTP_X_API_KEY": key}, {}, {"HTTP_X_API_KEY": key}):
        del sent_commands[:]
        assert client.get("/stats" if headers else "/assets", **headers).status_code == 200
        throttle = [c for c in sent_commands if any("throttle" in a for a in c)]
        assert [c[0].upper() for c in throttle] == ["EVALSHA"], sent_commands
        keys = throttle[0][3 : 3 + int(throttle[0][2])]
        buckets = [k for k in keys if ":throttle:" in k]
        assert len(buckets) == (2 if headers else 1), keys
        # The rest is what the response cache reads in the same trip: the data version.
        assert [k.rsplit(":", 1)[1] for k in keys if k not in buckets] == ["data-version"], keys

    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    address, apikey = (
        f"{prefix}:throttle:address:127.0.0.1",
        f"{prefix}:throttle:apikey:{row.prefix}",
    )
    found = {k.decode() for k in redis_client.scan_iter(f"{prefix}:throttle:*")}
    assert found == {address, apikey}
    assert (redis_client.zcard(address), redis_client.zcard(apikey)) == (4, 3)
    assert 0 < redis_client.pttl(address) <= 60_000


def test_each_request_is_its_own_entry(settings, redis_client):
    settings.API_RATE_PER_ADDRESS = "10000/min"
    assert [throttle_charge(address="10.2.0.1") for _ in range(300)] == [None] * 300
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    assert redis_client.zcard(f"{prefix}:throttle:address:10.2.0.1") == 300


# --- Redis down -----------------------------------------------------------------------------


@pytest.fixture
def redis_unreachable(settings):
    original = settings.CACHES
    settings.CACHES = {
        "default": {
            "BACKEND": REDIS_CACHE,
            "LOCATION": "redis://127.0.0.1:1/0",
            "KEY_PREFIX": "unreachable",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    yield
    settings.CACHES = original


def test_redis_down_fails_open_with_a_warning(redis_unreachable, client, settings, caplog):
    settings.API_RATE_PER_ADDRESS = "1/min"
    with caplog.at_level(logging.WARNING, logger="kasparro.core.throttle"):
        started = time.monotonic()
        assert codes(client, 3) == [200, 200, 200]
        assert time.monotonic() - started < 5
    warnings = [r for r in caplog.records if r.name == "kasparro.core.throttle"]
    assert len(warnings) == 3, "one warning per request let through"
    assert all(r.levelno == logging.WARNING for r in warnings)
    assert "Redis unavailable" in warnings[0].getMessage()


def test_each_thread_and_each_forked_process_holds_its_own_connection(redis_client):
    """One held connection per thread, reused request after request; a forked child (a Celery
    worker process) never talks over its parent's socket."""
    from kasparro.core.throttle import cache_redis

    def client_id() -> int:
        return cache_redis().client_id()

    mine = client_id()
    assert client_id() == mine  # held, not a new connection per call
    other: list[int] = []
    thread = threading.Thread(target=lambda: other.append(client_id()))
    thread.start()
    thread.join()
    assert other and other[0] != mine

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its connection's id, then leave at once
        try:
            os.write(write, str(client_id()).encode())
        finally:
            os._exit(0)
    os.close(write)
    child = int(os.read(read, 64) or b"0")
    os.waitpid(pid, 0)
    os.close(read)
    assert child not in (0, mine)
    assert client_id() == mine  # the parent's connection is still in step
    assert throttle_charge(address="198.51.100.7") is None


def test_a_redis_that_lost_the_script_gets_it_again(settings, redis_client):
    """A restarted (or flushed) Redis knows no script: the next charge loads it and counts."""
    settings.API_RATE_PER_ADDRESS = "2/min"
    assert throttle_charge(address="198.51.100.8") is None
    redis_client.script_flush()
    assert throttle_charge(address="198.51.100.8") is None
    assert throttle_charge(address="198.51.100.8") is not None  # the third in the minute


def test_a_held_connection_redis_closed_is_replaced_without_a_warning(
    settings, redis_client, caplog
):
    """Redis closing a thread's held connection (a restart, its idle timeout) costs the next
    command one reconnect, not a request let through unthrottled."""
    from kasparro.core.throttle import cache_redis

    settings.API_RATE_PER_ADDRESS = "2/min"
    assert throttle_charge(address="198.51.100.9") is None
    redis_client.client_kill_filter(_id=cache_redis().client_id())
    with caplog.at_level(logging.WARNING, logger="kasparro.core.throttle"):
        assert throttle_charge(address="198.51.100.9") is None
        assert throttle_charge(address="198.51.100.9") is not None  # still counted: the third
    assert not [r for r in caplog.records if r.name == "kasparro.core.throttle"]
