"""A client generated from the live server's /api/schema/ by a maintained generator
(openapi-python-client) calls every operation and reads typed answers. The generated models
parse each answer by the schema: a missing field, a wrong enum value or date fails to parse,
and every attribute is then checked against the type the model declares (with no undeclared
field left over), so if the schema lies about an answer, this test fails.

The client is generated at test time into a temporary folder (nothing generated is committed),
offline: the generator reads the schema file and writes Python."""

from __future__ import annotations

import datetime
import importlib
import subprocess
import sys
import types
import typing
import urllib.request
import uuid
from pathlib import Path

import attrs
import pytest

from crypto.models import Article, Asset, LatestQuote
from kasparro.core.catalogue import source_names
from runs.api import EXAMPLE_RUN_IDS
from runs.models import Run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
CONFIG = Path(__file__).with_name("openapi_client.yaml")
PACKAGE = "kasparro_client"


@pytest.fixture
def generated(live_api, tmp_path) -> types.ModuleType:
    """The client package, generated from what the live server serves at /api/schema/."""
    schema = tmp_path / "schema.json"
    with urllib.request.urlopen(f"{live_api.url}/api/schema/?format=json") as response:  # noqa: S310
        schema.write_bytes(response.read())
    done = subprocess.run(
        [GENERATOR, "generate", "--path", schema, "--meta", "none", "--config", CONFIG,
         "--output-path", tmp_path / PACKAGE],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # The generator skips what it cannot model and says so: nothing may be skipped.
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


# --- the typed reading ---------------------------------------------------------------------------


def assert_typed(value: object, hint: object, where: str) -> None:
    """`value` is of the type `hint` the generated code declares, all the way down."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return
    if origin in (typing.Union, types.UnionType):
        failures = []
        for option in args:
            try:
                assert_typed(value, option, where)
                return
            except AssertionError as failure:
                failures.append(str(failure))
        raise AssertionError(f"{where} = {value!r} is none of {hint}: {failures}")
    if origin is list:
        assert isinstance(value, list), f"{where} = {value!r} is not a list"
        for i, item in enumerate(value):
            assert_typed(item, args[0], f"{where}[{i}]")
        return
    if origin is dict:
        assert isinstance(value, dict), f"{where} = {value!r} is not an object"
        for key, item in value.items():
            assert isinstance(key, str), f"{where} has a key {key!r}"
            assert_typed(item, args[1], f"{where}[{key!r}]")
        return
    if hint is type(None):
        assert value is None, f"{where} = {value!r} is not null"
        return
    if hint is float:  # a JSON number: 3 is as good as 3.0
        assert isinstance(value, int | float) and not isinstance(value, bool), (
            f"{where} = {value!r}"
        )
        return
    if hint is int:
        assert isinstance(value, int) and not isinstance(value, bool), f"{where} = {value!r}"
        return
    assert isinstance(value, hint), f"{where} = {value!r} is not a {hint}"
    if attrs.has(hint):
        assert_model(value, where)


def assert_model(model: object, where: str = "") -> None:
    """Every attribute of a generated model is of its declared type; a model that declares its
    properties received no other (an undocumented field is a lie by omission)."""
    cls = type(model)
    where = where or cls.__name__
    namespace = {**vars(sys.modules[PACKAGE].models), **vars(sys.modules[cls.__module__])}
    hints = typing.get_type_hints(cls, globalns=namespace)
    declared = [f.name for f in attrs.fields(cls) if f.name != "additional_properties"]
    for name in declared:
        assert_typed(getattr(model, name), hints[name], f"{where}.{name}")
    extra = getattr(model, "additional_properties", {})
    if declared:
        assert extra == {}, f"{where} has undocumented fields {sorted(extra)}"
    else:  # a map (`sources`, `scores`...): its values have the declared type
        assert_typed(extra, hints["additional_properties"], where)


def read(response, expected: type, status: int = 200):
    """The parsed answer of a `sync_detailed` call: the status expected, the model the schema
    names for it, typed all the way down."""
    assert response.status_code == status, response.content[:500]
    assert isinstance(response.parsed, expected), (type(response.parsed), response.content[:500])
    assert_model(response.parsed)
    return response.parsed


# --- every operation -----------------------------------------------------------------------------


def test_a_generated_client_calls_every_operation_and_reads_typed_answers(
    generated, live_api, seeded
):
    from kasparro_client import AuthenticatedClient, Client

    # Undocumented statuses raise: every answer must be one the schema lists.
    options = {"base_url": live_api.url, "raise_on_unexpected_status": True, "timeout": 30}
    anonymous = Client(**options)
    token = AuthenticatedClient(token=live_api.key, prefix="Token", **options)
    header = AuthenticatedClient(
        token=live_api.key, prefix="", auth_header_name="X-API-Key", **options
    )
    conflicting = AuthenticatedClient(
        token="kas_0123456789ab_not-this-one",
        prefix="Token",
        headers={"X-API-Key": live_api.key},
        **options,
    )
    with anonymous, token, header, conflicting:  # closed: the server then stops at once
        read_public_operations(anonymous, token, header)
        read_token_operations(token, header)
        read_documented_errors(anonymous, token, conflicting)


def read_public_operations(anonymous, token, header) -> None:
    from kasparro_client import models as m
    from kasparro_client.api.assets import assets_history_retrieve, assets_list, assets_retrieve
    from kasparro_client.api.data import data_retrieve
    from kasparro_client.api.health import health_retrieve
    from kasparro_client.api.news import news_retrieve

    health = read(health_retrieve.sync_detailed(client=anonymous), m.Health)
    assert health.database_connected is True
    assert set(health.etl_status.additional_properties) == set(source_names())

    data = read(data_retrieve.sync_detailed(client=anonymous, limit=100), m.DataEnvelope)
    assert data.pagination.total_items == LatestQuote.objects.count() > len(data.data) == 100
    assert all(isinstance(item, m.MarketItem) for item in data.data)
    bitcoin = read(
        data_retrieve.sync_detailed(
            client=token, source=m.DataRetrieveSource.COINGECKO, symbol="BTC"
        ),
        m.DataEnvelope,
    ).data
    assert [(item.slug, item.source) for item in bitcoin] == [("bitcoin", "coingecko")]
    assert bitcoin[0].current_price > 0 and isinstance(bitcoin[0].last_updated, datetime.datetime)
    news_page = read(
        data_retrieve.sync_detailed(client=header, source=m.DataRetrieveSource.RSS_FEED, limit=5),
        m.DataEnvelope,
    )
    assert news_page.pagination.total_items == Article.objects.count()
    assert all(isinstance(item, m.Article) for item in news_page.data)

    assets = read(assets_list.sync_detailed(client=anonymous, q="bitcoin"), m.AssetEnvelope)
    assert "bitcoin" in {a.slug for a in assets.data}
    assert assets.pagination.total_items == len(assets.data) <= Asset.objects.count()

    detail = read(assets_retrieve.sync_detailed("bitcoin", client=anonymous), m.AssetDetail)
    assert detail.slug == "bitcoin" and detail.symbol == "BTC"
    assert {identity.source for identity in detail.identities} >= {"coingecko", "csv"}
    assert {latest.source for latest in detail.latest} >= {"coingecko", "csv"}

    history = read(
        assets_history_retrieve.sync_detailed(
            "bitcoin",
            client=anonymous,
            interval=m.AssetsHistoryRetrieveInterval.DAY,
            source=m.AssetsHistoryRetrieveSource.COINGECKO,
            format_=m.AssetsHistoryRetrieveFormat.JSON,
        ),
        m.History,
    )
    assert history.interval == "day" and history.data
    assert all(p.source == "coingecko" and p.samples >= 1 for p in history.data)
    raw = read(assets_history_retrieve.sync_detailed("bitcoin", client=anonymous), m.History)
    assert all(p.price_min is None and p.price_max is None for p in raw.data)

    news = read(
        news_retrieve.sync_detailed(client=anonymous, asset="bitcoin", limit=100), m.NewsEnvelope
    )
    assert news.data and all("bitcoin" in {a.slug for a in n.assets} for n in news.data)
    assert all(isinstance(n.published_at, datetime.datetime) for n in news.data)


def read_token_operations(token, header) -> None:
    from kasparro_client import models as m
    from kasparro_client.api.compare_runs import compare_runs_create
    from kasparro_client.api.runs import runs_list, runs_retrieve
    from kasparro_client.api.stats import stats_retrieve

    stats = read(stats_retrieve.sync_detailed(client=token, window_hours=24), m.Stats)
    assert set(stats.sources.additional_properties) == set(source_names())
    successes = Run.objects.filter(source="coingecko", status="success").count()
    assert stats.sources["coingecko"].runs["success"] == successes

    runs = read(runs_list.sync_detailed(client=header, limit=100), m.RunEnvelope)
    assert [r.id for r in runs.data] == list(
        Run.objects.order_by("-started_at").values_list("id", flat=True)
    )
    assert {r.status for r in runs.data} == {m.RunStatusEnum.SUCCESS}
    newest = runs.data[0]
    run = read(runs_retrieve.sync_detailed(newest.id, client=token), m.RunDetail)
    assert (run.id, run.source) == (newest.id, newest.source)
    assert run.assets_seen == len(Run.objects.get(pk=newest.id).asset_prices or {})

    baseline, candidate = (uuid.UUID(run_id) for run_id in EXAMPLE_RUN_IDS)
    comparison = read(
        compare_runs_create.sync_detailed(
            client=header,
            body=m.CompareInputRequest(run_id_1=baseline, run_id_2=candidate),
        ),
        m.CompareOutput,
    )
    assert (comparison.run_1.id, comparison.run_2.id) == (baseline, candidate)
    # Copies of one run: the same assets at the same prices.
    assert comparison.asset_changes.appeared == comparison.asset_changes.vanished == []
    assert comparison.asset_changes.price_moves == []


def read_documented_errors(anonymous, token, conflicting) -> None:
    """The errors the schema documents parse as its Error, with their codes."""
    from kasparro_client import models as m
    from kasparro_client.api.assets import assets_retrieve
    from kasparro_client.api.compare_runs import compare_runs_create
    from kasparro_client.api.news import news_retrieve
    from kasparro_client.api.runs import runs_retrieve
    from kasparro_client.api.stats import stats_retrieve

    missing = read(assets_retrieve.sync_detailed("not-a-coin", client=anonymous), m.Error, 404)
    assert missing.error.code == "not_found" and missing.request_id

    bad = read(news_retrieve.sync_detailed(client=anonymous, limit=1000), m.Error, 400)
    assert bad.error.message.startswith("limit:")

    unauthenticated = read(stats_retrieve.sync_detailed(client=anonymous), m.Error, 401)
    assert unauthenticated.error.status == 401

    conflict = read(stats_retrieve.sync_detailed(client=conflicting), m.Error, 401)
    assert conflict.error.code == "conflicting_credentials"

    unknown = read(runs_retrieve.sync_detailed(uuid.uuid4(), client=token), m.Error, 404)
    assert unknown.error.message.startswith("No run with id")
    no_pair = read(
        compare_runs_create.sync_detailed(
            client=token, body=m.CompareInputRequest(run_id_1=uuid.uuid4(), run_id_2=uuid.uuid4())
        ),
        m.Error,
        404,
    )
    assert no_pair.error.code == "not_found"
