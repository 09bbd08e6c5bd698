"""Data migrations, run on rows as they were before."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.utils import timezone

from crypto.models import Article

pytestmark = pytest.mark.django_db


def test_stored_article_links_are_cleaned_of_tracking_parameters():
    migration = importlib.import_module("etl.migrations.0005_article_links_without_tracking")
    now = timezone.now()
    tracked, clean = Article.objects.bulk_create(
        [
            Article(feed="f", guid="1", title="t", url="https://x.io/a?utm_source=rss&id=2",
                    published_at=now, fetched_at=now, updated_at=now, content_hash="h1"),
            Article(feed="f", guid="2", title="t", url="https://x.io/b?id=3",
                    published_at=now, fetched_at=now, updated_at=now, content_hash="h2"),
        ]
    )  # fmt: skip

    migration.clean(apps, None)

    assert Article.objects.get(pk=tracked.pk).url == "https://x.io/a?id=2"
    assert Article.objects.get(pk=clean.pk).url == "https://x.io/b?id=3"


@pytest.mark.django_db(transaction=True)
def test_page_bodies_move_to_their_own_table_once_per_text():
    import hashlib
    import zlib

    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from etl.models import RawRecord
    from tests.factories import RunFactory

    before = [("etl", "0005_article_links_without_tracking")]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps.get_model("etl", "RawRecord")
        run = RunFactory(source="csv")
        text = "bitcoin,btc,Bitcoin,87000,2025-12-28T05:00:00Z\n"
        now = timezone.now()
        for name in ("a.csv", "b.csv"):  # one file dropped twice under two names
            old.objects.create(
                source="csv", content_hash=hashlib.sha256(name.encode()).hexdigest(),
                payload={"file": name, "first_row": 1}, body=zlib.compress(text.encode(), 1),
                item_count=1, page_ref=f"{name} rows 1-1", run_id=run.pk, fetched_at=now,
            )  # fmt: skip
        old.objects.create(
            source="coingecko", content_hash="c" * 64, payload=[{"id": "bitcoin"}], item_count=1,
            page_ref="page 1", run_id=run.pk, fetched_at=now,
        )  # fmt: skip
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)

    pages = list(RawRecord.objects.select_related("body").order_by("pk"))
    assert [p.body_text for p in pages] == [text, text, None]
    assert pages[0].body_id == pages[1].body_id
    assert pages[0].body.size == len(zlib.compress(text.encode(), 1))
    assert [p.payload_size for p in pages] == [30, 30, 18]  # the payloads' JSON
    assert all(p.last_seen_at == now for p in pages)
