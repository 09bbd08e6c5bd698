"""The admin: every page renders, list pages make as many queries with many rows as with few,
only staff get in, and the operators' checkpoint and quarantine actions do what they say."""

from __future__ import annotations

import datetime as dt
import json
import zlib

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.template.defaultfilters import filesizeformat
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crypto.admin import QuoteAdmin
from crypto.models import Article, Asset
from etl.models import Checkpoint, QuarantinedRecord, RawBody, RawRecord, SourceLease
from kasparro.core.admin_utils import BoundedCountPaginator
from runs.models import Run
from tests.factories import (
    FACTORIES,
    APIKeyFactory,
    ArticleAssetFactory,
    ArticleFactory,
    AssetFactory,
    CheckpointFactory,
    DriftEventFactory,
    LatestQuoteFactory,
    QuarantinedRecordFactory,
    QuoteFactory,
    RawRecordFactory,
    RunFactory,
    SourceAssetFactory,
)

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)


def label(model) -> str:
    return model._meta.label


def admin_url(model, view: str, *args) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-1234567890")


@pytest.fixture
def su_client(client, superuser):
    client.force_login(superuser)
    return client


def get_counting(client, url: str):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response, [q["sql"] for q in queries.captured_queries]


# --- Every page ---------------------------------------------------------------------------------


def test_every_admin_model_has_a_factory():
    assert [label(m) for m in REGISTERED if m not in FACTORIES] == []


@pytest.mark.parametrize("model", REGISTERED, ids=label)
def test_changelist_queries_do_not_grow_with_rows(model, su_client):
    factory = FACTORIES[model]
    url = admin_url(model, "changelist")
    factory.create_batch(2)
    su_client.get(url)  # warm per-process caches (content types, permissions)
    _, few = get_counting(su_client, url)

    factory.create_batch(30)
    response, many = get_counting(su_client, url)

    assert len(many) == len(few), f"{len(few)} queries with 2 rows, with 32:\n" + "\n".join(many)
    changelist = response.context["cl"]
    assert changelist.result_count == model._default_manager.count() >= 32
    assert len(changelist.result_list) >= 32


@pytest.mark.parametrize("model", REGISTERED, ids=label)
def test_change_or_view_page_of_an_existing_object_renders(model, su_client):
    obj = FACTORIES[model]()
    response = su_client.get(admin_url(model, "change", quote(obj.pk)))
    assert response.status_code == 200


@pytest.mark.parametrize("url", ["/admin/", "/admin/runs/run/", "/admin/etl/checkpoint/"])
def test_anonymous_and_non_staff_users_are_sent_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")

    user = get_user_model().objects.create_user("analyst", password="pw-1234567890")
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_without_permissions_cannot_open_a_list(client):
    user = get_user_model().objects.create_user("intern", password="pw-1", is_staff=True)
    client.force_login(user)
    assert client.get("/admin/runs/run/").status_code == 403


def test_view_only_staff_see_pages_but_cannot_act(client, django_capture_on_commit_callbacks):
    user = get_user_model().objects.create_user("viewer", password="pw-1", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_checkpoint", "view_run"])
    )
    client.force_login(user)
    checkpoint = CheckpointFactory(cursor={"next_page": 3})
    run = RunFactory(status=Run.Status.FAILED)

    page = client.get(admin_url(Checkpoint, "change", checkpoint.pk))
    assert page.status_code == 200
    assert 'name="confirm"' not in page.content.decode()
    assert rewind(client, checkpoint, {}, confirm="on").status_code == 403
    listing = client.get(admin_url(Run, "changelist"))
    assert listing.status_code == 200 and listing.context["action_form"] is None  # no actions
    with django_capture_on_commit_callbacks() as queued:
        post_action(client, Run, "retry", [run])
    assert queued == []


@pytest.mark.parametrize(
    ("model_label", "factory", "action", "unchanged"),
    [
        ("etl.DriftEvent", DriftEventFactory, "accept", lambda o: o.status == "open"),
        ("etl.DriftEvent", DriftEventFactory, "reject", lambda o: o.status == "open"),
        ("apikeys.APIKey", APIKeyFactory, "revoke", lambda o: o.revoked_at is None),
    ],
)
def test_view_only_staff_are_offered_no_action_and_cannot_post_one(
    client, model_label, factory, action, unchanged
):
    from django.apps import apps

    model = apps.get_model(model_label)
    user = get_user_model().objects.create_user("viewer", password="pw-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename=f"view_{model._meta.model_name}"))
    client.force_login(user)
    obj = factory()

    listing = client.get(admin_url(model, "changelist"))
    assert listing.status_code == 200 and listing.context["action_form"] is None
    post_action(client, model, action, [obj])
    obj.refresh_from_db()
    assert unchanged(obj)


# --- Runs ---------------------------------------------------------------------------------------


def test_run_page_shows_everything_the_run_recorded(su_client):
    parent = RunFactory(status=Run.Status.FAILED)
    run = RunFactory(
        status=Run.Status.PARTIAL,
        trigger=Run.Trigger.RETRY,
        parent=parent,
        checkpoint_before={"next_page": 2},
        checkpoint_after={"next_page": 1},
        error_class="etl.exceptions.InjectedFault",
        error_message="injected fault: coingecko:load at page 2",
        findings=[{"rule": "duration", "severity": "warning", "message": "4x slower <b>"}],
    )
    child = RunFactory(trigger=Run.Trigger.RETRY, parent=run)
    event = DriftEventFactory(runs=[run])
    records = QuarantinedRecordFactory.create_batch(52, run=run)

    response = su_client.get(admin_url(Run, "change", run.pk))
    page = response.content.decode()

    assert response.status_code == 200
    assert "Save" not in page  # view mode
    assert admin_url(Run, "change", parent.pk) in page
    assert admin_url(Run, "change", child.pk) in page
    assert reverse("admin:etl_driftevent_change", args=[event.pk]) in page
    assert "&quot;next_page&quot;: 2" in page
    assert "etl.exceptions.InjectedFault" in page
    assert "<td>duration</td><td>warning</td><td>4x slower &lt;b&gt;</td>" in page
    shown = [r for r in records if admin_url(QuarantinedRecord, "change", r.pk) in page]
    assert len(shown) == 50
    assert f"/admin/etl/quarantinedrecord/?run={run.pk}" in page


def test_quarantine_list_filtered_by_run(su_client):
    run = RunFactory()
    mine = QuarantinedRecordFactory.create_batch(2, run=run)
    QuarantinedRecordFactory.create_batch(3)

    response = su_client.get(f"/admin/etl/quarantinedrecord/?run={run.pk}")
    assert {r.pk for r in response.context["cl"].result_list} == {r.pk for r in mine}
    bad = su_client.get("/admin/etl/quarantinedrecord/?run=not-a-uuid")
    assert bad.status_code == 302 and "e=1" in bad["Location"]


def test_run_list_filters(su_client):
    RunFactory.create_batch(2, source="csv", status=Run.Status.FAILED)
    RunFactory.create_batch(3, source="coingecko")
    response = su_client.get("/admin/runs/run/?source=csv&status__exact=failed")
    assert response.context["cl"].result_count == 2
    year = timezone.now().year
    response = su_client.get(f"/admin/runs/run/?started_at__year={year}")
    assert response.status_code == 200


def test_run_search_finds_a_run_by_id_or_by_the_words_of_its_error(su_client):
    failed = RunFactory(
        source="csv", status=Run.Status.FAILED, error_message="Connection refused by upstream"
    )
    quiet = RunFactory(source="csv")
    by_id = su_client.get("/admin/runs/run/", {"q": str(quiet.pk)})
    assert list(by_id.context["cl"].result_list) == [quiet]
    by_words = su_client.get("/admin/runs/run/", {"q": "refused"})
    assert list(by_words.context["cl"].result_list) == [failed]
    assert su_client.get("/admin/runs/run/", {"q": "12345678"}).context["cl"].result_count == 0


def test_run_list_lists_catalogue_sources_probes_dates_and_bounds_its_count(su_client, monkeypatch):
    monkeypatch.setattr(BoundedCountPaginator, "limit", 3)
    RunFactory.create_batch(4, source="rss")
    with CaptureQueriesContext(connection) as queries:
        response = su_client.get("/admin/runs/run/")
    html = response.content.decode()
    assert "3+ runs" in html
    assert 'href="?source=coingecko"' in html  # from the catalogue, not the rows
    sql = " ".join(q["sql"].upper() for q in queries.captured_queries)
    assert "DISTINCT" not in sql and "MIN(" not in sql  # no scan of the history
    year = RunFactory._meta.model.objects.first().started_at.year
    assert f"?started_at__year={year}" in html


# --- Checkpoints --------------------------------------------------------------------------------


def post_action(client, model, action: str, objects, **extra):
    data = {"action": action, "_selected_action": [o.pk for o in objects], **extra}
    return client.post(admin_url(model, "changelist"), data)


def test_checkpoint_reset_asks_for_confirmation_then_resets_and_audits(su_client):
    checkpoint = CheckpointFactory(source="coingecko", cursor={"next_page": 3})

    first = post_action(su_client, Checkpoint, "reset", [checkpoint])
    assert first.status_code == 200
    assert "admin/etl/checkpoint/reset_confirmation.html" in [t.name for t in first.templates]
    assert "coingecko" in first.content.decode() and "next page 3" in first.content.decode()
    checkpoint.refresh_from_db()
    assert checkpoint.cursor == {"next_page": 3}
    assert not LogEntry.objects.exists()

    second = post_action(su_client, Checkpoint, "reset", [checkpoint], post="yes")
    assert second.status_code == 302
    checkpoint.refresh_from_db()
    assert checkpoint.cursor == {}
    (entry,) = LogEntry.objects.all()
    assert entry.object_id == str(checkpoint.pk)
    assert entry.get_change_message() == 'Reset the cursor from {"next_page":3} to {}'


def test_checkpoint_reset_refused_while_a_run_holds_the_source(su_client):
    checkpoint = CheckpointFactory(source="coingecko", cursor={"next_page": 3})
    SourceLease.objects.create(
        source="coingecko",
        holder="00000000-0000-0000-0000-000000000001",
        expires_at=timezone.now() + dt.timedelta(minutes=5),
    )
    response = post_action(su_client, Checkpoint, "reset", [checkpoint], post="yes")
    assert response.status_code == 302
    checkpoint.refresh_from_db()
    assert checkpoint.cursor == {"next_page": 3}
    assert not LogEntry.objects.exists()


def rewind(client, checkpoint, cursor, **extra):
    return client.post(
        admin_url(Checkpoint, "change", checkpoint.pk), {"cursor": json.dumps(cursor), **extra}
    )


def test_checkpoint_rewind_needs_the_confirmation_checkbox(su_client):
    checkpoint = CheckpointFactory(source="coingecko", cursor={"next_page": 3})

    page = su_client.get(admin_url(Checkpoint, "change", checkpoint.pk)).content.decode()
    assert "I understand the next run resumes from this cursor" in page
    assert "&quot;next_page&quot;: 3" in page  # pretty-printed current cursor

    refused = rewind(su_client, checkpoint, {"next_page": 2})
    assert refused.status_code == 200
    assert "confirm" in refused.context["adminform"].form.errors
    checkpoint.refresh_from_db()
    assert checkpoint.cursor == {"next_page": 3}

    done = rewind(su_client, checkpoint, {"next_page": 2}, confirm="on")
    assert done.status_code == 302
    checkpoint.refresh_from_db()
    assert checkpoint.cursor == {"next_page": 2}
    (entry,) = LogEntry.objects.all()
    assert entry.get_change_message() == (
        'Rewound the cursor from {"next_page":3} to {"next_page":2}'
    )


def test_checkpoint_rewind_refuses_what_is_not_a_cursor_or_a_running_source(su_client):
    checkpoint = CheckpointFactory(source="coingecko", cursor={"next_page": 3})
    response = rewind(su_client, checkpoint, [1, 2], confirm="on")
    assert "cursor" in response.context["adminform"].form.errors

    SourceLease.objects.create(
        source="coingecko",
        holder="00000000-0000-0000-0000-000000000001",
        expires_at=timezone.now() + dt.timedelta(minutes=5),
    )
    response = rewind(su_client, checkpoint, {"next_page": 2}, confirm="on")
    assert "in progress" in str(response.context["adminform"].form.non_field_errors())
    checkpoint.refresh_from_db()
    assert checkpoint.cursor == {"next_page": 3}
    assert not LogEntry.objects.exists()


def test_checkpoint_rewind_refused_when_a_run_starts_after_the_form_was_checked(
    su_client, monkeypatch
):
    checkpoint = CheckpointFactory(source="coingecko", cursor={"next_page": 3})
    monkeypatch.setattr("etl.admin.checkpoints.checkpoint_check_writable", lambda source: None)
    SourceLease.objects.create(
        source="coingecko",
        holder="00000000-0000-0000-0000-000000000001",
        expires_at=timezone.now() + dt.timedelta(minutes=5),
    )

    response = rewind(su_client, checkpoint, {"next_page": 1}, confirm="on")

    assert response.status_code == 302
    assert response["Location"] == admin_url(Checkpoint, "change", checkpoint.pk)
    checkpoint.refresh_from_db()
    assert checkpoint.cursor == {"next_page": 3}
    assert not LogEntry.objects.exists()
    page = su_client.get(response["Location"]).content.decode()
    assert "is in progress" in page and "was changed successfully" not in page


# --- Quarantine ---------------------------------------------------------------------------------


def test_quarantine_discard_marks_open_items_only(su_client):
    open_items = QuarantinedRecordFactory.create_batch(2)
    replayed = QuarantinedRecordFactory(status=QuarantinedRecord.Status.REPLAYED)
    untouched = QuarantinedRecordFactory()

    response = post_action(su_client, QuarantinedRecord, "discard", [*open_items, replayed])
    assert response.status_code == 302

    statuses = dict(QuarantinedRecord.objects.values_list("pk", "status"))
    assert [statuses[r.pk] for r in open_items] == ["discarded", "discarded"]
    assert statuses[replayed.pk] == "replayed"
    assert statuses[untouched.pk] == "open"


def test_quarantine_page_shows_the_item_pretty_printed(su_client):
    record = QuarantinedRecordFactory(payload=QuarantinedRecord.wrap(["btc", "<x>"]))
    page = su_client.get(admin_url(QuarantinedRecord, "change", record.pk)).content.decode()
    assert "[\n  &quot;btc&quot;,\n  &quot;&lt;x&gt;&quot;\n]" in page


def test_raw_page_list_reads_no_payload_nor_body_and_shows_sizes(su_client):
    """The list read every page's payload and body: 19 MB for 100 CSV pages."""
    data = zlib.compress(bytes(range(256)) * 4000)
    body = RawBody.objects.create(digest="d" * 64, data=data, size=len(data))
    RawRecordFactory.create_batch(3, body=body, payload_size=150)
    RawRecordFactory(payload_size=2048)

    response, queries = get_counting(su_client, admin_url(RawRecord, "changelist"))

    assert any('"etl_rawbody"."size"' in q for q in queries)  # the list's one query
    assert all('"etl_rawrecord"."payload"' not in q for q in queries)
    assert all('"etl_rawbody"."data"' not in q for q in queries)
    page = response.content.decode()
    assert filesizeformat(150 + len(data)) in page and filesizeformat(2048) in page


# --- Quotes: filters, date drill-down and the bounded count --------------------------------------


def test_quote_filters_list_ranked_assets_and_filter_the_series(su_client):
    bitcoin, ether, obscure = AssetFactory(), AssetFactory(), AssetFactory()
    LatestQuoteFactory(asset=bitcoin, market_cap_rank=1)
    LatestQuoteFactory(asset=ether, market_cap_rank=2, source="csv")
    QuoteFactory.create_batch(3, asset=bitcoin)
    QuoteFactory.create_batch(2, asset=ether, source="csv")
    QuoteFactory(asset=obscure)

    response = su_client.get("/admin/crypto/quote/")
    filters = {spec.parameter_name: spec for spec in response.context["cl"].filter_specs}
    assert [c[0] for c in filters["asset"].lookup_choices] == [str(bitcoin.pk), str(ether.pk)]
    assert [c[0] for c in filters["source"].lookup_choices] == ["coingecko", "csv"]

    response = su_client.get(f"/admin/crypto/quote/?asset={obscure.pk}")
    assert response.context["cl"].result_count == 1
    spec = next(s for s in response.context["cl"].filter_specs if s.parameter_name == "asset")
    assert (str(obscure.pk), str(obscure)) in spec.lookup_choices  # the selected one is listed

    assert su_client.get("/admin/crypto/quote/?source=csv").context["cl"].result_count == 2
    assert su_client.get("/admin/crypto/quote/?q=" + ether.slug).context["cl"].result_count == 2
    assert su_client.get("/admin/crypto/quote/?asset=x").status_code == 302  # ?e=1


def test_quote_date_drill_down_lists_only_periods_with_quotes(su_client):
    asset = AssetFactory()
    for stamp in (
        "2024-03-05T10:00Z",
        "2025-02-01T00:00Z",
        "2025-02-28T23:59Z",
        "2025-07-04T12:00Z",
    ):
        QuoteFactory(asset=asset, observed_at=dt.datetime.fromisoformat(stamp))

    def choices(query: str) -> list[str]:
        response = su_client.get("/admin/crypto/quote/" + query)
        assert response.status_code == 200
        page = response.content.decode()
        start = page.index('<nav class="toplinks">')
        toplinks = page[start : page.index("</nav>", start)]
        links = toplinks.split("<a href")[1:]
        return [a.split(">")[1].split("<")[0].removeprefix("&lsaquo; ") for a in links]

    assert choices("") == ["2024", "2025"]
    assert choices("?observed_at__year=2025") == ["All dates", "February 2025", "July 2025"]
    assert choices("?observed_at__year=2025&observed_at__month=2") == [
        "2025",
        "February 1",
        "February 28",
    ]
    response = su_client.get(
        "/admin/crypto/quote/?observed_at__year=2025&observed_at__month=2&observed_at__day=28"
    )
    assert response.context["cl"].result_count == 1


def test_quote_count_is_bounded(su_client, monkeypatch):
    monkeypatch.setattr(BoundedCountPaginator, "limit", 5)
    monkeypatch.setattr(QuoteAdmin, "list_per_page", 2)
    QuoteFactory.create_batch(8)

    with CaptureQueriesContext(connection) as queries:
        response = su_client.get("/admin/crypto/quote/")
    cl = response.context["cl"]
    assert cl.result_count == 5 and cl.full_result_count is None
    assert "5+ quotes" in response.content.decode()
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT 5" in sql for sql in counts)
    assert su_client.get("/admin/crypto/quote/?p=3").status_code == 200


def test_assets_show_and_sort_by_their_best_rank(su_client):
    second, first, unranked = AssetFactory(), AssetFactory(), AssetFactory()
    LatestQuoteFactory(asset=second, market_cap_rank=2)
    LatestQuoteFactory(asset=first, market_cap_rank=7, source="csv")
    LatestQuoteFactory(asset=first, market_cap_rank=1)

    response = su_client.get("/admin/crypto/asset/?o=4")  # the rank column

    rows = list(response.context["cl"].result_list)
    assert [(a.pk, a.rank) for a in rows] == [(first.pk, 1), (second.pk, 2), (unranked.pk, None)]


def test_inlines_make_a_constant_number_of_queries(su_client):
    asset, article = AssetFactory(), ArticleFactory()

    def pages() -> list[int]:
        counts = []
        for url in (admin_url(Asset, "change", asset.pk), admin_url(Article, "change", article.pk)):
            su_client.get(url)
            counts.append(len(get_counting(su_client, url)[1]))
        return counts

    SourceAssetFactory(asset=asset)
    LatestQuoteFactory(asset=asset)
    ArticleAssetFactory(article=article)
    few = pages()
    SourceAssetFactory.create_batch(5, asset=asset, source="csv")
    LatestQuoteFactory(asset=asset, source="csv")
    ArticleAssetFactory.create_batch(5, article=article)
    assert pages() == few


def asset_change_post(client, asset: Asset, **changes):
    """Save an asset through its admin form as an operator would: the form as shown, its
    inlines posted back untouched, `changes` applied."""
    url = admin_url(Asset, "change", asset.pk)
    page = client.get(url).context
    data = {k: v for k, v in page["adminform"].form.initial.items() if v is not None}
    data.update(changes)
    for inline in page["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(k): v for k, v in management.initial.items()})
        for form in inline.formset.forms:
            data[form.add_prefix("id")] = form.instance.pk
            data[form.add_prefix("asset")] = asset.pk
    return client.post(url, data)


def test_an_asset_saves_with_its_read_only_inlines(su_client):
    """The latest quotes shown on an asset's page are read-only: saving the asset posts them
    back untouched and must not trip over them."""
    asset = AssetFactory(name="Old name")
    source_asset = SourceAssetFactory(asset=asset)
    latest = LatestQuoteFactory(asset=asset)

    response = asset_change_post(su_client, asset, name="New name")

    assert response.status_code == 302
    asset.refresh_from_db()
    assert asset.name == "New name"
    source_asset.refresh_from_db()
    latest.refresh_from_db()
    assert latest.asset_id == asset.pk and source_asset.asset_id == asset.pk
