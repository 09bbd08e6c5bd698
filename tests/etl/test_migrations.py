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
