"""Benchmark: server time of every admin changelist, each of its filters' choices (up to five
per filter), its date drill-down to the oldest month and a search, on the database that
DATABASE_URL names (built by tests/benchmarks/scale.py, say). In-process through Django's
test client as a superuser: the time is the server's, median of three after a warm-up.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kasparro_scale_100000 \\
        .venv/bin/python tests/benchmarks/admin_pages.py [--over 300]

Prints the slowest pages and every page over `--over` milliseconds (target: none over 300).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def setup() -> None:
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kasparro.settings")
    import django

    django.setup()


def pages() -> list[str]:
    """Every changelist, its filters' choices, its oldest month and a search."""
    from django.contrib import admin
    from django.db.models import Min
    from django.urls import reverse

    urls = []
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        base = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        urls.append(base)
        if model_admin.search_fields:
            urls.append(f"{base}?q=coin-0500")
        if model_admin.date_hierarchy:
            field = model_admin.date_hierarchy
            oldest = model._default_manager.aggregate(m=Min(field))["m"]
            if oldest:
                urls.append(f"{base}?{field}__year={oldest.year}")
                urls.append(f"{base}?{field}__year={oldest.year}&{field}__month={oldest.month}")
        urls.extend(_filter_urls(base, model_admin))
    return urls


def _filter_urls(base: str, model_admin) -> list[str]:
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    request = RequestFactory().get(base)
    request.user = get_user_model().objects.filter(is_superuser=True).first()
    changelist = model_admin.get_changelist_instance(request)
    urls = []
    for spec in changelist.filter_specs:
        for choice in list(spec.choices(changelist))[1:6]:  # the first is "All"
            urls.append(base + choice["query_string"])
    return urls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--over", type=float, default=300.0)
    args = parser.parse_args()
    setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    results = []
    for url in pages():
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        times = []
        for _ in range(3):
            started = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        results.append((statistics.median(times), url))
    results.sort(reverse=True)
    print(f"{len(results)} admin pages; slowest {results[0][0]:.0f} ms; median "
          f"{statistics.median(t for t, _ in results):.0f} ms")  # fmt: skip
    for ms, url in results[:12]:
        print(f"  {ms:7.1f} ms  {url}")
    over = [(ms, url) for ms, url in results if ms > args.over]
    print(f"{len(over)} over {args.over:.0f} ms")


if __name__ == "__main__":
    main()
