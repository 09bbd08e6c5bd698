from __future__ import annotations

import dataclasses

import pytest

from kasparro.core.apikeys.services import apikey_create
from tests.support import gunicorn, process_env


@pytest.fixture
def api_key(db) -> str:
    return apikey_create(name="tests")[1]


@pytest.fixture
def auth(api_key) -> dict:
    return {"HTTP_AUTHORIZATION": f"Token {api_key}"}


@dataclasses.dataclass(frozen=True)
class LiveApi:
    url: str  # base URL, no trailing slash
    key: str  # an API key for the token endpoints


@pytest.fixture
def seeded(loaded):
    """Every source ingested, plus two runs under the ids the schema's examples name (copies
    of the CoinGecko run, prices included), so that the documented examples reach real rows."""
    from runs.api import EXAMPLE_RUN_IDS
    from runs.models import Run

    copies = []
    for run_id in EXAMPLE_RUN_IDS:
        run = Run.objects.get(pk=loaded[0].pk)
        run.pk = run_id
        run.save(force_insert=True)
        copies.append(run)
    return [*loaded, *copies]


@pytest.fixture
def live_api(transactional_db, seeded):
    """The app as deployed (gunicorn, our config) in its own processes, over the seeded test
    database, with throttles out of the way of a client that sends a thousand requests."""
    _, key = apikey_create(name="live")
    env = process_env(API_RATE_PER_ADDRESS="100000/min", API_RATE_PER_KEY="100000/min")
    with gunicorn(env) as url:
        yield LiveApi(url=url, key=key)
