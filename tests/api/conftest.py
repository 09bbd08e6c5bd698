from __future__ import annotations

import pytest

from kasparro.core.apikeys.services import apikey_create


@pytest.fixture
def api_key(db) -> str:
    return apikey_create(name="tests")[1]


@pytest.fixture
def auth(api_key) -> dict:
    return {"HTTP_AUTHORIZATION": f"Token {api_key}"}
