"""End-to-end ingestion against local upstreams fed with the real samples."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
from django.db.models import Count
from django.utils import timezone
from werkzeug import Response

from crypto.models import Article, ArticleAsset, Asset, LatestQuote, Quote, SourceAsset
from etl.faults import FaultPlan
from etl.models import Checkpoint, QuarantinedRecord, RawRecord, SourceLease
from etl.pipeline.run import ingest_run
from etl.services.leases import SourceClaim
from runs.models import Run

pytestmark = pytest.mark.django_db


def run(source: str, faults: str | None = None, **kwargs) -> Run:
    plan = FaultPlan.parse(faults) if faults else None
    return ingest_run(source_name=source, trigger=Run.Trigger.CLI, faults=plan, **kwargs)


def quote_rows(source: str | None = None) -> list[tuple]:
    qs = Quote.objects.all() if source is None else Quote.objects.filter(source=source)
    return sorted(
        qs.values_list(
            "asset__slug",
            "source",
            "observed_at",
            "price_usd",
            "market_cap",
            "volume_24h",
            "price_change_24h",
            "market_cap_rank",
        )
    )


def test_full_ingestion_of_all_three_sources(coingecko, feeds, csv_drop):
    runs = [run("coingecko"), run("csv"), run("rss")]

    assert [r.status for r in runs] == ["success", "success", "success"], [
        r.error_message for r in runs
    ]
    cg, csv_run, rss = runs
    assert (cg.pages, cg.items_fetched, cg.items_inserted) == (2, 100, 100)
    assert Quote.objects.filter(source="coingecko").count() == 100
    # 100 rows of the top-100 export plus 2 quirky rows, every one resolved to a real asset
    assert (csv_run.items_fetched, csv_run.items_inserted, csv_run.items_quarantined) == (
        102,
        102,
        0,
    )
    assert rss.items_fetched == 25 + 30 + 58
    assert Article.objects.count() == rss.items_inserted == 113

    bitcoin = Asset.objects.get(slug="bitcoin")
    assert bitcoin.symbol == "BTC"
    assert set(bitcoin.identities.values_list("source", "match_method")) == {
        ("coingecko", "authoritative"),
        ("csv", "coingecko_id"),
        ("csv", "symbol_name"),  # the quirky file's "btc,Bitcoin" row
    }
    btc_quotes = Quote.objects.filter(asset=bitcoin).order_by("source", "observed_at")
    assert [(q.source, q.price_usd) for q in btc_quotes] == [
        ("coingecko", Decimal("87645")),
        ("csv", Decimal("87645")),
        ("csv", Decimal("87000")),
    ]
    # One latest quote per asset and source.
    assert LatestQuote.objects.filter(source="coingecko").count() == 100
    latest_csv_btc = LatestQuote.objects.get(asset=bitcoin, source="csv")
    assert latest_csv_btc.observed_at == max(q.observed_at for q in btc_quotes[1:])
    # Articles link to the coins they mention.
    assert ArticleAsset.objects.filter(asset=bitcoin).exists()
    assert set(Checkpoint.objects.values_list("source", flat=True)) == {"coingecko", "csv", "rss"}


def test_quirky_formats_are_parsed(coingecko, csv_drop):
    run("coingecko")
    run("csv")
    eth = Quote.objects.get(source="csv", asset__slug="ethereum", price_usd=Decimal("4800"))
    assert eth.market_cap == Decimal("600000000000")
    btc = Quote.objects.get(source="csv", asset__slug="bitcoin", price_usd=Decimal("87000"))
    assert btc.market_cap == Decimal("1700000000000")


def test_second_ingestion_adds_only_genuinely_new_quotes(coingecko):
    first = run("coingecko")
    before = quote_rows()
    raw_before = RawRecord.objects.count()

    second = run("coingecko")
    assert second.status == "success"
    assert (second.items_inserted, second.items_updated, second.items_unchanged) == (0, 0, 100)
    assert quote_rows() == before
    assert RawRecord.objects.count() == raw_before  # failure mode 9: raw kept once

    # Bitcoin moves: exactly one new quote.
    coingecko.pages[0][0] = {
        **coingecko.pages[0][0],
        "current_price": 90000.5,
        "last_updated": "2025-12-28T06:56:13.703Z",
    }
    third = run("coingecko")
    assert (third.items_inserted, third.items_updated, third.items_unchanged) == (1, 0, 99)
    assert Quote.objects.count() == first.items_inserted + 1
    latest = LatestQuote.objects.get(asset__slug="bitcoin", source="coingecko")
    assert latest.price_usd == Decimal("90000.5")


def test_corrected_value_at_same_time_is_an_update_not_a_duplicate(coingecko):
    run("coingecko")
    coingecko.pages[0][1] = {**coingecko.pages[0][1], "total_volume": 1}
    again = run("coingecko")
    assert (again.items_inserted, again.items_updated) == (0, 1)
    assert Quote.objects.get(asset__slug="ethereum").volume_24h == 1


def test_broken_run_resumes_at_next_page_and_ends_with_unbroken_rows(coingecko, settings):
    settings.COINGECKO_PAGES = 2
    unbroken_first = run("coingecko")
    unbroken = quote_rows()
    Quote.objects.all().delete()
    LatestQuote.objects.all().delete()
    Checkpoint.objects.all().delete()
    assert unbroken_first.status == "success"

    broken = run("coingecko", faults="coingecko:load:1@page2")
    assert broken.status == "failed"
    assert "injected fault" in broken.error_message
    assert broken.pages == 1 and broken.items_inserted == 50
    assert Checkpoint.objects.get(source="coingecko").cursor == {"next_page": 2}
    assert Quote.objects.count() == 50  # page 2 rolled back entirely

    coingecko.requests.clear()
    resumed = run("coingecko")
    assert resumed.status == "success"
    assert [r.args["page"] for r in coingecko.requests] == ["2"]  # page 1 not fetched again
    assert resumed.checkpoint_before == {"next_page": 2}
    assert resumed.items_inserted == 50
    assert quote_rows() == unbroken


def test_failed_run_keeps_the_checkpoint(coingecko, settings):
    """Failure mode 1: a failed run wiped the checkpoint, so the next run started over."""
    run("coingecko")
    assert Checkpoint.objects.get(source="coingecko").cursor == {"next_page": 1}

    coingecko.fail = lambda page: Response("down", status=503) if page == 2 else None
    failed = run("coingecko")
    assert failed.status == "failed"
    assert "HTTP 503" in failed.error_message
    assert failed.error_class == "etl.exceptions.TransientUpstreamError"
    assert failed.retryable  # the task retries it
    checkpoint = Checkpoint.objects.get(source="coingecko")
    assert checkpoint.cursor == {"next_page": 2}
    assert failed.checkpoint_after == {"next_page": 2}


def test_error_in_a_step_fails_the_run_with_true_counts(coingecko):
    """Failure mode 4: data rolled back but the run recorded as a success with a count."""
    broken = run("coingecko", faults="coingecko:checkpoint:1@page1")
    assert broken.status == "failed"
    assert (broken.pages, broken.items_inserted, broken.items_fetched) == (0, 0, 0)
    assert Quote.objects.count() == 0
    assert RawRecord.objects.count() == 0
    assert not Checkpoint.objects.filter(source="coingecko").exists()


@pytest.mark.parametrize("point", ["fetch", "parse", "normalize", "load", "checkpoint"])
def test_fault_at_any_point_then_clean_run_gives_the_same_data(coingecko, point):
    clean = run("coingecko")
    expected = quote_rows()
    Quote.objects.all().delete()
    Checkpoint.objects.all().delete()
    assert clean.status == "success"

    assert run("coingecko", faults=f"coingecko:{point}:1@page2").status == "failed"
    assert run("coingecko").status == "success"
    assert quote_rows() == expected


def test_same_coin_on_two_pages_is_not_an_error(coingecko):
    """Failure mode 3: ranks shift between requests, so page 2 repeats a coin of page 1."""
    coingecko.pages[1][0] = dict(coingecko.pages[0][49])
    coingecko.pages[1][1] = dict(coingecko.pages[0][49])  # and twice in one page
    result = run("coingecko")
    assert result.status == "success", result.error_message
    assert result.items_inserted == 50 + 48  # two of page 2's own coins were replaced
    assert result.items_unchanged == 1 + 1
    slug = coingecko.pages[0][49]["id"]
    assert Quote.objects.filter(asset__slug=slug).count() == 1


def test_shared_symbols_never_merge_coins(coingecko, csv_drop):
    """Failure mode 5: coins matched by symbol alone merged different coins."""
    run("coingecko")
    run("csv")
    collisions = (
        Asset.objects.values("symbol").annotate(n=Count("id")).filter(n__gt=1).order_by("symbol")
    )
    by_symbol = {row["symbol"]: row["n"] for row in collisions}
    assert by_symbol["SOL"] == 2 and by_symbol["USDC"] == 2 and by_symbol["WETH"] == 2
    for slug in ("solana", "wrapped-solana", "usd-coin", "weth", "binance-peg-weth"):
        asset = Asset.objects.get(slug=slug)
        assert Quote.objects.filter(asset=asset, source="csv").count() == 1, slug
    # Each CSV identity maps to the asset of the same CoinGecko id.
    for identity in SourceAsset.objects.filter(source="csv", match_method="coingecko_id"):
        assert identity.key == identity.asset.slug


def test_symbol_without_clear_name_is_quarantined_not_guessed(coingecko, empty_csv_drop):
    run("coingecko")
    (empty_csv_drop / "drop.csv").write_text(
        "symbol,name,price\n"
        "sol,Solana,190\n"
        "sol,,191\n"  # a symbol alone
        "usdc,Some Unknown Dollar,1\n"  # no candidate is close
        "zzzz,Nothing,1\n"  # nobody has this symbol
    )
    result = run("csv")
    assert result.status == "partial"
    assert (result.items_inserted, result.items_quarantined) == (1, 3)
    assert Quote.objects.get(source="csv").asset.slug == "solana"
    reasons = dict(QuarantinedRecord.objects.values_list("payload__values__1", "reason_code"))
    assert reasons == {
        "": "ambiguous_identity",
        "Some Unknown Dollar": "unresolved_identity",
        "Nothing": "unknown_asset",
    }


def test_news_is_never_stored_as_market_data(coingecko, feeds):
    """Failure mode 6: articles stored as coins with symbol NEWS and price 0."""
    run("coingecko")
    assets_before = Asset.objects.count()
    run("rss")
    assert Article.objects.count() == 113
    assert Asset.objects.count() == assets_before
    assert not Asset.objects.filter(symbol="NEWS").exists()
    assert not Quote.objects.filter(source="rss").exists()


def test_zero_is_stored_as_zero(coingecko):
    """Failure mode 7: a value of 0 was stored as NULL (`x if x else None`)."""
    coingecko.pages[0][0] = {
        **coingecko.pages[0][0],
        "price_change_percentage_24h": 0,
        "total_volume": 0.0,
    }
    run("coingecko")
    quote = Quote.objects.get(asset__slug="bitcoin")
    assert quote.price_change_24h == 0 and quote.price_change_24h is not None
    assert quote.volume_24h == 0 and quote.volume_24h is not None
    assert quote.market_cap_rank == 1


def test_api_key_only_in_header_never_in_url_or_logs(coingecko, caplog):
    """Failure mode 8: the API key travelled in the URL and was written to the logs."""
    caplog.set_level("DEBUG")
    coingecko.fail = lambda page: Response("slow down", status=429) if page == 2 else None
    result = run("coingecko")
    assert result.status == "failed"
    key = "test-demo-key-123"
    for request in coingecko.requests:
        assert request.headers["x-cg-demo-api-key"] == key
        assert key not in request.url
    assert key not in caplog.text
    assert key not in result.error_message
    assert key not in json.dumps(list(RawRecord.objects.values_list("payload", flat=True)))


def test_unchanged_feed_costs_no_work(feeds):
    first = run("rss")
    assert first.status == "success"
    assert sum(feeds.served.values()) == 3

    second = run("rss")
    assert second.status == "success"
    assert sum(feeds.not_modified.values()) == 3
    assert sum(feeds.served.values()) == 3
    assert (second.pages, second.items_fetched, second.items_inserted) == (0, 0, 0)
    assert RawRecord.objects.filter(source="rss").count() == 3


def test_feed_without_validators_is_deduplicated_by_guid(feeds, httpserver, settings):
    settings.RSS_FEED_URLS = [feeds.url("cointelegraph")]
    feeds.etag = lambda name: '"changes-every-time-' + str(sum(feeds.served.values())) + '"'
    run("rss")
    again = run("rss")
    assert (again.items_fetched, again.items_inserted, again.items_unchanged) == (30, 0, 30)
    assert Article.objects.count() == 30
    # Cointelegraph's guid is the clean URL; links carry utm parameters.
    article = Article.objects.order_by("pk").first()
    assert "utm_" not in article.guid


def test_one_feed_down_makes_a_partial_run(feeds, settings, httpserver):
    settings.RSS_FEED_URLS = [*feeds.urls, httpserver.url_for("/feeds/missing.rss")]
    result = run("rss")
    assert result.status == "partial"
    assert "missing.rss" in result.error_message
    assert Article.objects.count() == 113


def test_all_feeds_down_is_a_failed_run(settings):
    settings.RSS_FEED_URLS = ["http://127.0.0.1:9/a.rss", "http://127.0.0.1:9/b.rss"]
    result = run("rss")
    assert result.status == "failed"
    assert "127.0.0.1:9/a.rss" in result.error_message


def test_feeds_answering_304_beside_a_broken_one_make_a_partial_run(feeds, settings, httpserver):
    """Every part answered (200 or 304): success; some failed: partial; all failed: failed."""
    assert run("rss").status == "success"
    assert run("rss").status == "success"  # every feed answered 304: nothing new, no failure
    assert sum(feeds.not_modified.values()) == 3
    settings.RSS_FEED_URLS = [*feeds.urls[:2], httpserver.url_for("/feeds/missing.rss")]
    result = run("rss")
    assert result.status == "partial"
    assert "missing.rss" in result.error_message
    assert Article.objects.count() == 113


def test_second_start_while_a_live_run_holds_the_source_is_skipped(coingecko):
    holder = uuid.uuid4()
    assert SourceClaim(source="coingecko", holder=holder).acquire()
    skipped = run("coingecko")
    assert skipped.status == "skipped"
    assert f"another run of coingecko is in progress (run {holder})" in skipped.error_message
    assert Quote.objects.count() == 0
    assert coingecko.requests == []


def test_expired_claim_is_taken_over(coingecko):
    past = timezone.now() - dt.timedelta(seconds=1)
    SourceLease.objects.create(source="coingecko", holder=uuid.uuid4(), expires_at=past)
    result = run("coingecko")
    assert result.status == "success"
    assert SourceLease.objects.get(source="coingecko").holder is None


def test_unreachable_upstream_fails_with_a_clear_error(settings):
    settings.COINGECKO_BASE_URL = "http://127.0.0.1:9/api/v3"
    result = run("coingecko")
    assert result.status == "failed"
    assert "127.0.0.1:9/api/v3/coins/markets" in result.error_message
    assert "ConnectionError" in result.error_message


def test_html_error_page_with_200_is_an_error_not_data(coingecko):
    coingecko.fail = lambda page: Response("<html>Cloudflare</html>", content_type="text/html")
    result = run("coingecko")
    assert result.status == "failed"
    assert "expected JSON, got an HTML page" in result.error_message
    assert Quote.objects.count() == 0


def test_missing_csv_folder_fails_with_a_clear_error(settings, tmp_path):
    settings.CSV_DROP_DIR = tmp_path / "nope"
    result = run("csv")
    assert result.status == "failed"
    assert "CSV_DROP_DIR does not exist" in result.error_message


def test_bad_market_items_are_quarantined_with_reasons(coingecko):
    page = coingecko.pages[0]
    page[0] = {**page[0], "current_price": "not a number"}
    page[1] = {**page[1], "last_updated": None}
    page[2] = "garbage"
    page[3] = {**page[3], "market_cap": 1e30}
    result = run("coingecko")
    assert result.status == "partial"
    assert result.items_quarantined == 4 and result.items_inserted == 96
    codes = sorted(QuarantinedRecord.objects.values_list("reason_code", flat=True))
    assert codes == ["invalid_value", "invalid_value", "malformed", "missing_field"]
    assert all(q.reason for q in QuarantinedRecord.objects.all())

    # The same bad items next hour are counted, not duplicated.
    again = run("coingecko")
    assert again.items_quarantined == 4
    assert QuarantinedRecord.objects.count() == 4
    assert set(QuarantinedRecord.objects.values_list("occurrences", flat=True)) == {2}


def test_appended_csv_rows_are_read_alone(coingecko, empty_csv_drop):
    """Failure mode 2: the cursor counted the rows of the last read, not the absolute position,
    so appending one row re-read the whole file and duplicated raw rows."""
    run("coingecko")
    drop = empty_csv_drop / "prices.csv"
    drop.write_text(
        "coin_id,symbol,name,price_usd,last_updated\n"
        "bitcoin,btc,Bitcoin,87000,2025-12-28T05:00:00Z\n"
        "ethereum,eth,Ethereum,2900,2025-12-28T05:00:00Z\n"
    )
    first = run("csv")
    assert (first.items_fetched, first.items_inserted) == (2, 2)
    raw_before = RawRecord.objects.filter(source="csv").count()

    with drop.open("a") as fh:
        fh.write("bitcoin,btc,Bitcoin,88000,2025-12-28T06:00:00Z\n")
    second = run("csv")
    assert (second.items_fetched, second.items_inserted, second.items_unchanged) == (1, 1, 0)
    assert RawRecord.objects.filter(source="csv").count() == raw_before + 1
    assert Checkpoint.objects.get(source="csv").cursor["files"]["prices.csv"]["row"] == 3
    assert Quote.objects.filter(source="csv").count() == 3

    third = run("csv")
    assert (third.pages, third.items_fetched) == (0, 0)
