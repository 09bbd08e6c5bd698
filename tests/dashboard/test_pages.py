"""The dashboard's pages as a person opens them: status, content, and a constant number of
queries whatever the number of assets."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crypto.models import ArticleAsset, Asset, LatestQuote, Quote
from runs.models import Run
from tests.factories import ArticleFactory, RunFactory

pytestmark = pytest.mark.django_db


def queries(client, path: str) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, response.content[:500]
    return len(captured), response.content.decode()


def market(count: int, hours: int = 3) -> list[Asset]:
    """`count` assets, each with `hours` hourly CoinGecko quotes and its latest quote."""
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    assets = Asset.objects.bulk_create(
        Asset(slug=f"coin-{i:04d}", symbol=f"C{i:04d}", name=f"Coin {i:04d}") for i in range(count)
    )
    Quote.objects.bulk_create(
        Quote(
            asset=asset,
            source="coingecko",
            observed_at=now - dt.timedelta(hours=h),
            price_usd=Decimal(100 + i + h),
            ingested_at=now,
        )
        for i, asset in enumerate(assets)
        for h in range(hours)
    )
    LatestQuote.objects.bulk_create(
        LatestQuote(
            asset=asset,
            source="coingecko",
            observed_at=now,
            price_usd=Decimal(100 + i),
            market_cap=Decimal(10**12) / (i + 1),
            volume_24h=Decimal(35 * 10**9),
            price_change_24h=Decimal("-1.5") if i % 2 else Decimal("2.25"),
            market_cap_rank=i + 1,
        )
        for i, asset in enumerate(assets)
    )
    return assets


# --- / -------------------------------------------------------------------------------------------


def test_markets_from_the_samples_show_prices_changes_caps_sparklines_and_sources(client, loaded):
    html = client.get("/").content.decode()

    assert "Bitcoin" in html and 'href="/coins/bitcoin/"' in html
    assert re.search(r"\$\d{1,3}(,\d{3})+\.\d\d", html)  # a price with thousands separators
    assert re.search(r"\$\d+(\.\d+)?[TB]<", html)  # a market cap in human units
    assert 'class="num up"' in html or 'class="num down"' in html  # a coloured change
    assert html.count('<td class="spark-cell">') == 50  # a 7-day sparkline cell per row
    assert '<span class="chip">coingecko</span><span class="chip">csv</span>' in html
    assert "CoinGecko updated" in html and 'href="/pipeline/"' in html
    for link in ("/admin/", "/api/docs/", "/health"):
        assert f'href="{link}"' in html


def test_markets_search_and_source_filter_narrow_the_table(client, loaded):
    everything = client.get("/").content.decode()
    found = client.get("/", {"q": "sol"}).content.decode()
    csv_only = client.get("/", {"source": "csv"}).content.decode()

    assert everything.count("<tr>") > found.count("<tr>") > 1
    assert "Solana" in found and "Bitcoin</strong>" not in found
    rows = csv_only.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
    assert rows and all('<span class="chip">csv</span>' in row for row in rows)
    assert 'value="csv" selected' in csv_only
    assert "$87,000.00" in csv_only.split("Bitcoin</strong>")[1]  # bitcoin's CSV price shown


def test_live_search_answers_the_table_alone(client, loaded):
    html = client.get("/", {"q": "bitcoin"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="markets")
    body = html.content.decode()
    assert body.lstrip().startswith('<div id="markets">') and "<html" not in body
    assert "Bitcoin" in body


def test_markets_cost_the_same_queries_for_10_and_1000_assets(client):
    market(10)
    few, _ = queries(client, "/")
    Asset.objects.all().delete()
    market(1000)
    many, html = queries(client, "/")
    assert many == few <= 8
    assert "Page 1 of 20" in html


def test_a_sparkline_draws_the_hourly_prices_of_the_week(client):
    market(2, hours=30)
    html = client.get("/").content.decode()
    lines = re.findall(r'<polyline fill="none" points="([^"]+)"', html)
    assert [len(points.split()) for points in lines] == [30, 30]
    assert client.get("/").content.decode() == html  # the second time from the cache
    # Prices rise towards the past in market(): the newest point is the lowest, drawn lowest.
    assert 'class="spark down"' in html


def test_a_sparkline_draws_the_richest_sources_week_not_a_blend(client):
    """A live CoinGecko price beside a CSV drop that stopped a year ago: the line is the
    CSV's last week (titled so), never a blend across the year; where CoinGecko has more
    hours in its own week, CoinGecko's."""
    [asset] = market(1, hours=1)
    year_ago = LatestQuote.objects.get(asset=asset).observed_at - dt.timedelta(days=365)
    csv_prices = [Decimal(50 + h) for h in range(48)]
    Quote.objects.bulk_create(
        Quote(
            asset=asset,
            source="csv",
            observed_at=year_ago - dt.timedelta(hours=h),
            price_usd=price,
            ingested_at=year_ago,
        )
        for h, price in enumerate(csv_prices)
    )
    LatestQuote.objects.create(asset=asset, source="csv", observed_at=year_ago, price_usd=50)
    html = client.get("/").content.decode()
    [points] = re.findall(r'<polyline fill="none" points="([^"]+)"', html)
    assert len(points.split()) == 48
    assert f"(csv, to {year_ago:%-d %b %Y %H:%M} UTC)" in html

    Quote.objects.filter(asset=asset, source="coingecko").delete()
    market_more = [
        Quote(
            asset=asset,
            source="coingecko",
            observed_at=LatestQuote.objects.get(asset=asset, source="coingecko").observed_at
            - dt.timedelta(hours=h),
            price_usd=Decimal(200 + h),
            ingested_at=timezone.now(),
        )
        for h in range(60)
    ]
    Quote.objects.bulk_create(market_more)
    LatestQuote.objects.filter(asset=asset, source="coingecko").update(price_usd=Decimal(201))
    html = client.get("/").content.decode()  # same newest times: the cached line...
    assert "(csv, to" in html
    cache.clear()  # ...until the hour's cache ends
    html = client.get("/").content.decode()
    [points] = re.findall(r'<polyline fill="none" points="([^"]+)"', html)
    assert len(points.split()) == 60 and "(coingecko, to" in html


def test_the_shipped_sample_data_gives_every_market_row_a_sparkline(client, coingecko, settings):
    """`make run`'s CSV_DROP_DIR (the real snapshot plus its made-up week of hourly prices)
    with the CoinGecko sample: every row of the markets page draws a week."""
    from etl.pipeline.run import ingest_run

    settings.CSV_DROP_DIR = settings.BASE_DIR / "data" / "csv_drop"
    for source in ("coingecko", "csv"):
        assert ingest_run(source_name=source, trigger="cli").status == "success"
    html = client.get("/").content.decode()
    lines = re.findall(r'<polyline fill="none" points="([^"]+)"', html)
    assert len(lines) == html.count('<td class="spark-cell">') == 50
    assert all(len(points.split()) == 60 for points in lines)  # a week of hours, thinned
    page = client.get("/coins/bitcoin/", {"range": "7d", "interval": "raw"})
    series = page.context["chart"]["series"]
    assert set(series) == {"coingecko", "csv"}  # one line per source on the same axes
    assert len(series["csv"]["time"]) == 168 and len(series["coingecko"]["time"]) == 1


def test_markets_pages_and_an_empty_search(client):
    market(60)
    second = client.get("/", {"page": 2}).content.decode()
    assert "Coin 0050" in second and "Coin 0049" not in second
    nothing = client.get("/", {"q": "no-such-coin"}).content.decode()
    assert "No asset matches" in nothing
    assert client.get("/", {"page": "x", "source": "bogus"}).status_code == 200


# --- /coins/<slug>/ ----------------------------------------------------------------------------


def test_asset_page_has_a_chart_per_source_identities_quotes_news_and_csv(client, loaded):
    response = client.get("/coins/bitcoin/", {"range": "all", "interval": "raw"})
    html = response.content.decode()
    data = response.context["chart"]

    assert set(data["series"]) == {"coingecko", "csv"}
    shown = sum(len(s["price"]) for s in data["series"].values())
    assert shown == data["points"] == Quote.objects.filter(asset__slug="bitcoin").count()
    assert 'id="chart-data"' in html and "vendor/plotly.min.js" in html
    assert "Symbol plus fuzzy name" in html or "CoinGecko id" in html  # identities
    assert html.count('class="card"') == 2  # latest quote per source
    assert "/assets/bitcoin/history?format=csv" in html


@pytest.mark.parametrize("span", ["24h", "7d", "30d", "all"])
@pytest.mark.parametrize("interval", ["raw", "hour", "day"])
def test_every_range_and_interval_renders(client, loaded, span, interval):
    response = client.get("/coins/bitcoin/", {"range": span, "interval": interval})
    assert response.status_code == 200
    assert response.context["span"] == span and response.context["interval"] == interval


def test_an_unknown_asset_is_a_404_and_bad_parameters_fall_back(client, loaded):
    assert client.get("/coins/no-such-coin/").status_code == 404
    response = client.get("/coins/bitcoin/", {"range": "1y", "interval": "week"})
    assert response.status_code == 200 and response.context["span"] == "7d"


def test_asset_page_queries_do_not_grow_with_history(client):
    [asset] = market(1, hours=3)
    few, _ = queries(client, f"/coins/{asset.slug}/?range=all&interval=raw")
    Asset.objects.all().delete()
    [asset] = market(1, hours=500)
    many, _ = queries(client, f"/coins/{asset.slug}/?range=all&interval=raw")
    assert many == few


# --- /articles/ ----------------------------------------------------------------------------------


def test_news_newest_first_with_asset_chips_and_filters(client, loaded):
    html = client.get("/articles/").content.decode()
    assert 'class="chip" href="/coins/' in html
    times = re.findall(r'<time datetime="([^"]+)"', html)
    assert times == sorted(times, reverse=True) and len(times) == 30

    about = client.get("/articles/", {"asset": "bitcoin"}).content.decode()
    assert 'href="/coins/bitcoin/"' in about
    none = client.get("/articles/", {"q": "zzzz-nothing"}).content.decode()
    assert "No article matches" in none


def news_about(assets: list[Asset], articles: int = 30) -> None:
    """`articles` articles, each mentioning every one of `assets` (at most 5)."""
    made = ArticleFactory.create_batch(articles)
    ArticleAsset.objects.bulk_create(
        ArticleAsset(article=article, asset=asset, matched_by="name")
        for article in made
        for asset in assets[:5]
    )


def test_news_costs_the_same_queries_for_10_and_1000_assets(client):
    news_about(market(10))
    few, html = queries(client, "/articles/?asset=coin-0001")
    assert html.count('class="chip"') >= 30
    few_all, _ = queries(client, "/articles/")
    Asset.objects.all().delete()
    news_about(market(1000))
    many, _ = queries(client, "/articles/?asset=coin-0001")
    many_all, _ = queries(client, "/articles/")
    assert (many, many_all) == (few, few_all)


def test_asset_page_costs_the_same_queries_for_10_and_1000_assets(client):
    news_about(market(10))
    few, html = queries(client, "/coins/coin-0001/")
    assert "Coin 0001" in html
    Asset.objects.all().delete()
    news_about(market(1000))
    many, _ = queries(client, "/coins/coin-0001/")
    assert many == few


# --- /pipeline/ ----------------------------------------------------------------------------------


def test_pipeline_shows_each_source_its_last_run_and_the_timeline(client, loaded):
    RunFactory(source="rss", status=Run.Status.FAILED, started_at=timezone.now())
    html = client.get("/pipeline/").content.decode()
    assert "CoinGecko" in html and "CSV drops" in html and "RSS/Atom feeds" in html
    assert '<span class="badge failed">' in html and '<span class="badge success">' in html
    assert 'id="timeline-data"' in html
    assert "Drift and quarantine in admin" not in html  # details stay in admin, for staff


def test_pipeline_links_admin_for_staff(admin_client, loaded):
    html = admin_client.get("/pipeline/").content.decode()
    assert "Drift and quarantine in admin" in html


def test_pipeline_queries_do_not_grow_with_runs(client):
    RunFactory.create_batch(3)
    few, _ = queries(client, "/pipeline/")
    RunFactory.create_batch(300)
    many, _ = queries(client, "/pipeline/")
    assert many == few


def test_a_favicon_is_linked_and_served(client):
    html = client.get("/articles/").content.decode()
    assert "dashboard/favicon.svg" in html


def test_the_asset_pages_csv_link_downloads_the_shown_history(client, loaded):
    response = client.get("/coins/bitcoin/", {"range": "all", "interval": "raw"})
    link = re.search(r'class="download" href="([^"]+)"', response.content.decode()).group(1)
    download = client.get(link.replace("&amp;", "&"))
    lines = b"".join(download.streaming_content).decode().strip().splitlines()
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert len(lines) - 1 == response.context["chart"]["points"]


# --- admin that reads well -----------------------------------------------------------------------


def test_admin_shows_numbers_as_people_read_them_with_the_exact_value_on_hover(admin_client):
    market(3)
    html = admin_client.get("/admin/crypto/latestquote/").content.decode()
    assert '<span title="1,000,000,000,000" style="white-space:nowrap;color:inherit">$1.00T' in html
    assert "$35.0B" in html and "$100.00" in html
    assert 'color:#b91c1c">-1.50%' in html and 'color:#047857">+2.25%' in html
    assert "1000000000000.000000" not in html


def test_admin_status_columns_are_badges(admin_client):
    RunFactory(status=Run.Status.FAILED)
    html = admin_client.get("/admin/runs/run/").content.decode()
    assert 'class="kasparro-badge"' in html and 'background:#b91c1c">Failed<' in html


def test_admin_asset_page_has_the_price_chart_and_quiet_inlines(admin_client, loaded):
    asset = Asset.objects.get(slug="bitcoin")
    response = admin_client.get(f"/admin/crypto/asset/{asset.pk}/change/")
    html = response.content.decode()
    assert set(response.context["chart"]["series"]) == {"coingecko", "csv"}
    assert 'id="price-chart"' in html and "vendor/plotly.min.js" in html
    assert "dashboard/admin.css" in html  # hides the inline rows' object labels
    assert "$87,645.00" in html


def test_admin_runs_list_has_a_runs_chart(admin_client):
    RunFactory.create_batch(3)
    response = admin_client.get("/admin/runs/run/")
    assert len(response.context["timeline"]) == 3
    assert 'id="runs-chart"' in response.content.decode()


def test_a_weeks_sparkline_is_thinned_to_60_points_and_a_new_quote_redraws_it(client):
    [asset] = market(1, hours=24 * 8)
    first = re.findall(r'points="([^"]+)"', client.get("/").content.decode())
    assert [len(p.split()) for p in first] == [60]
    latest = LatestQuote.objects.get(asset=asset)
    Quote.objects.create(
        asset=asset,
        source="coingecko",
        observed_at=latest.observed_at + dt.timedelta(hours=1),
        price_usd=Decimal(1),
        ingested_at=latest.observed_at,
    )
    LatestQuote.objects.filter(pk=latest.pk).update(
        observed_at=latest.observed_at + dt.timedelta(hours=1), price_usd=Decimal(1)
    )
    second = re.findall(r'points="([^"]+)"', client.get("/").content.decode())
    assert second != first  # the new quote is a new cache key: never a stale line


def test_favicon_ico_leads_to_the_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("dashboard/favicon.svg")
    assert client.get(response["Location"]).status_code == 200
