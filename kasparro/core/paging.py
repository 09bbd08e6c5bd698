"""A page of rows and the total they are a page of, in one query.

For bounded sets only (the latest quote per asset and source, the assets): `COUNT(*) OVER ()`
is computed over every row the filter keeps before the page is cut, so on a table that grows
without bound (articles, runs) a separate `COUNT(*)`, which can be answered from an index, is
cheaper. A page past the end has no row to carry the total, nor has a DISTINCT query (the
window would count the duplicates): those are counted apart.
"""

from __future__ import annotations

from django.db.models import Count, QuerySet, Window

TOTAL = "page_total"


def page_with_total(
    qs: QuerySet, *, offset: int, limit: int, fields: tuple[str, ...]
) -> tuple[list[dict], int]:
    """`qs[offset:offset + limit]` as `.values(*fields)` rows, and `qs.count()`."""
    if qs.query.distinct:
        return list(qs[offset : offset + limit].values(*fields)), qs.count()
    rows = list(
        qs.annotate(**{TOTAL: Window(Count("*"))})[offset : offset + limit].values(*fields, TOTAL)
    )
    if not rows:
        return rows, qs.count() if offset else 0
    total = rows[0][TOTAL]
    for row in rows:
        del row[TOTAL]
    return rows, total
