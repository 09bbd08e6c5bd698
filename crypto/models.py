"""The data people read: canonical assets, per-source identities, quotes and news articles.

An Asset is one real coin; its slug is its CoinGecko id, the authoritative identity. Every
other source reaches an Asset through a SourceAsset row that records how it was matched.
"""

from __future__ import annotations

from django.db import models

# Quotes carry prices of fractions of a cent and market caps in the trillions.
PRICE_DIGITS = {"max_digits": 40, "decimal_places": 18}


class Asset(models.Model):
    slug = models.SlugField(max_length=200, unique=True, help_text="The CoinGecko id.")
    symbol = models.CharField(max_length=50, db_index=True, help_text="Upper case ticker.")
    name = models.CharField(max_length=200, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.name} ({self.symbol})"


class SourceAsset(models.Model):
    """How one source names a coin, mapped to the canonical Asset."""

    class Method(models.TextChoices):
        AUTHORITATIVE = "authoritative", "Authoritative (CoinGecko id)"
        COINGECKO_ID = "coingecko_id", "CoinGecko id carried by the row"
        SYMBOL_NAME = "symbol_name", "Symbol plus fuzzy name"
        MANUAL = "manual", "Set by an operator"

    source = models.CharField(max_length=50)
    key = models.CharField(max_length=300, help_text="The source's own key for the coin.")
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="identities")
    symbol = models.CharField(max_length=50, blank=True)
    name = models.CharField(max_length=200, blank=True)
    match_method = models.CharField(max_length=20, choices=Method.choices)
    confidence = models.PositiveSmallIntegerField(help_text="0-100")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "key"], name="sourceasset_source_key_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.key} -> {self.asset_id}"


# A quote's values, the same columns on Quote and LatestQuote: what loaders write and compare,
# and what history points carry after their time.
QUOTE_VALUES = ("price_usd", "market_cap", "volume_24h", "price_change_24h", "market_cap_rank")


class Quote(models.Model):
    """One observation of a coin's market data by one source: the time series."""

    # A foreign key for Django (joins, admin, cascades), without the database constraint: on
    # this append-heavy table PostgreSQL's per-row RI check cost ~40% of the load time (see
    # tests/benchmarks/). The loader only writes asset ids it resolved in the same
    # transaction, and assets are only deleted through the ORM, which cascades.
    # No separate index either: the unique constraint's index starts with asset_id.
    asset = models.ForeignKey(
        Asset, on_delete=models.CASCADE, related_name="quotes", db_constraint=False, db_index=False
    )
    source = models.CharField(max_length=50)
    observed_at = models.DateTimeField()
    price_usd = models.DecimalField(null=True, blank=True, **PRICE_DIGITS)
    market_cap = models.DecimalField(null=True, blank=True, **PRICE_DIGITS)
    volume_24h = models.DecimalField(null=True, blank=True, **PRICE_DIGITS)
    price_change_24h = models.DecimalField(
        null=True, blank=True, help_text="24h change in percent.", **PRICE_DIGITS
    )
    market_cap_rank = models.PositiveIntegerField(null=True, blank=True)
    ingested_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["asset", "source", "observed_at"], name="quote_asset_source_time_uniq"
            )
        ]
        # The unique constraint's index serves every per-asset history query; this one, time
        # windows across assets newest first (admin lists and drill-downs; migration 0003
        # builds it concurrently and drops the BRIN index it replaces).
        indexes = [models.Index(fields=["-observed_at", "-id"], name="quote_time_idx")]

    def __str__(self) -> str:
        return f"{self.asset_id}@{self.source} {self.observed_at:%Y-%m-%d %H:%M}"


class QuoteDay(models.Model):
    """A day of one asset's quotes from one source (UTC days), enough for the day bucket's
    average, min, max and samples exactly as an aggregate of the quotes gives them: sums and
    non-null counts per column (an average ignores nulls), min and max of the price.

    PostgreSQL only: statement triggers on crypto_quote keep it in the writing transaction,
    whoever writes (the loader, admin, a cascade), from the statement's transition tables
    (migration 0005, which also fills it). The history reads it for `interval=day`
    (`crypto.history`); elsewhere (SQLite) it stays empty and the day is aggregated."""

    asset = models.ForeignKey(
        Asset, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False, db_index=False
    )
    source = models.CharField(max_length=50)
    day = models.DateTimeField(help_text="Midnight UTC.")
    samples = models.BigIntegerField()
    price_count = models.BigIntegerField()
    price_sum = models.DecimalField(null=True, max_digits=60, decimal_places=18)
    price_min = models.DecimalField(null=True, **PRICE_DIGITS)
    price_max = models.DecimalField(null=True, **PRICE_DIGITS)
    cap_count = models.BigIntegerField()
    cap_sum = models.DecimalField(null=True, max_digits=60, decimal_places=18)
    volume_count = models.BigIntegerField()
    volume_sum = models.DecimalField(null=True, max_digits=60, decimal_places=18)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["asset", "source", "day"], name="quoteday_asset_source_day_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.asset_id}@{self.source} {self.day:%Y-%m-%d}"


class LatestQuote(models.Model):
    """A copy of the newest quote per (asset, source), kept in the same transaction as the
    quotes. `/data` reads this small table instead of scanning the whole time series."""

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="latest_quotes")
    source = models.CharField(max_length=50)
    observed_at = models.DateTimeField()
    price_usd = models.DecimalField(null=True, blank=True, **PRICE_DIGITS)
    market_cap = models.DecimalField(null=True, blank=True, **PRICE_DIGITS)
    volume_24h = models.DecimalField(null=True, blank=True, **PRICE_DIGITS)
    price_change_24h = models.DecimalField(null=True, blank=True, **PRICE_DIGITS)
    market_cap_rank = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["asset", "source"], name="latestquote_asset_source_uniq"
            )
        ]
        indexes = [
            models.Index(
                fields=["source", "market_cap_rank", "asset"], name="latest_source_rank_idx"
            ),
            models.Index(fields=["market_cap_rank", "asset"], name="latest_rank_idx"),
        ]

    def __str__(self) -> str:
        return f"latest {self.asset_id}@{self.source}"


class Article(models.Model):
    """A news item from one feed. Articles are not coins: they link to the assets they mention."""

    feed = models.CharField(max_length=500, help_text="The feed URL it came from.")
    guid = models.CharField(max_length=1000)
    title = models.TextField()
    url = models.URLField(max_length=2000, blank=True)
    summary = models.TextField(blank=True)
    author = models.CharField(max_length=300, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    content_hash = models.CharField(max_length=64)
    fetched_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    assets = models.ManyToManyField(Asset, through="ArticleAsset", related_name="articles")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["feed", "guid"], name="article_feed_guid_uniq")
        ]
        indexes = [models.Index(fields=["-published_at"], name="article_published_idx")]

    def __str__(self) -> str:
        return self.title[:80]


class ArticleAsset(models.Model):
    class MatchedBy(models.TextChoices):
        NAME = "name", "Name"
        TICKER = "ticker", "Ticker"
        CASHTAG = "cashtag", "$TICKER"

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="mentions")
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="mentions")
    matched_by = models.CharField(max_length=10, choices=MatchedBy.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["article", "asset"], name="articleasset_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.article_id} mentions {self.asset_id} ({self.matched_by})"


class DataVersion(models.Model):
    """One row: a counter advanced in the same transaction as every change the API can show
    (a page commit, a run's start or end, a checkpoint rewind, an edit in admin). Responses are
    cached and tagged by it (`crypto.response_cache`), so none outlives the commit that changed
    its data. Owned by `crypto.versions`."""

    number = models.BigIntegerField(default=1)
    changed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"data version {self.number}"
