"""A page and its total in one query (kasparro.core.paging): the total is the list's count
whatever the page, past the end and for a DISTINCT list too."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crypto.models import Asset
from crypto.selectors import asset_list, latest_quote_list, latest_quote_page
from kasparro.core.paging import page_with_total

pytestmark = pytest.mark.django_db


def test_the_total_is_the_count_for_every_page(loaded):
    for qs in (latest_quote_list(), latest_quote_list(symbol="BTC"), asset_list(q="coin")):
        count = qs.count()
        assert count > 0
        for offset, limit in [(0, 1), (0, 10), (3, 7), (count - 1, 5), (count, 5), (count + 9, 1)]:
            rows, total = page_with_total(qs, offset=offset, limit=limit, fields=("pk",))
            assert total == count, (offset, limit)
            assert [r["pk"] for r in rows] == list(
                qs[offset : offset + limit].values_list("pk", flat=True)
            )


def test_one_query_for_a_page_and_its_total(loaded):
    with CaptureQueriesContext(connection) as queries:
        rows, total = latest_quote_page(latest_quote_list(), offset=0, limit=10)
    assert len(rows) == 10 and total > 10 and len(queries) == 1


def test_a_distinct_list_is_counted_apart(loaded):
    qs = Asset.objects.filter(identities__isnull=False).distinct().order_by("slug")
    rows, total = page_with_total(qs, offset=0, limit=5, fields=("slug",))
    assert total == qs.count() == len(set(qs.values_list("slug", flat=True)))
    assert [r["slug"] for r in rows] == list(qs[:5].values_list("slug", flat=True))
