"""The analysts' admin: assets with their identities and latest quotes, the quote time series,
news articles with the assets they mention.

The quote table is the big one: its list never counts or scans every row (a bounded count, an
asset filter fed from the small LatestQuote table, a date drill-down that probes periods
instead of listing distinct dates, and newest-loaded-first ordering served by the primary key).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import F, OuterRef, Subquery
from django.utils.html import format_html
from django.utils.safestring import SafeString

from crypto.dashboard import chart_series
from crypto.formatting import exact, money, percent, price, trend
from crypto.models import Article, ArticleAsset, Asset, LatestQuote, Quote, SourceAsset
from kasparro.core.admin_utils import BoundedCountPaginator, ReadOnlyAdminMixin

TOP_ASSETS = 30


def number_column(field: str, shown, description: str, *, coloured: bool = False):
    """A column (or read-only field) showing a number as people read it, the exact value on
    hover; usable in list_display and as an admin attribute named in `fields`."""

    @admin.display(description=description, ordering=field)
    def column(*args) -> SafeString:
        value = getattr(args[-1], field)
        colour = {"up": "#047857", "down": "#b91c1c"}.get(trend(value), "") if coloured else ""
        return format_html(
            '<span title="{}" style="white-space:nowrap;color:{}">{}</span>',
            exact(value),
            colour or "inherit",
            shown(value),
        )

    column.__name__ = f"{field}_shown"
    return column


PRICE = number_column("price_usd", price, "price")
CAP = number_column("market_cap", money, "market cap")
VOLUME = number_column("volume_24h", money, "volume 24 h")
CHANGE = number_column("price_change_24h", percent, "24 h", coloured=True)


class MarketColumns:
    """The formatted market columns, as attributes an admin's `fields` can name."""

    price_usd_shown = PRICE
    market_cap_shown = CAP
    volume_24h_shown = VOLUME
    price_change_24h_shown = CHANGE


class SourceAssetInline(admin.TabularInline):
    """An asset's identities, read-only here (they are edited on their own page); an operator
    may still remove one from the asset's page."""

    model = SourceAsset
    extra = 0
    fields = ["source", "key", "symbol", "name", "match_method", "confidence", "created_at"]
    readonly_fields = fields


class LatestQuoteInline(MarketColumns, ReadOnlyAdminMixin, admin.TabularInline):
    model = LatestQuote
    fields = [
        "source",
        "observed_at",
        "price_usd_shown",
        "price_change_24h_shown",
        "market_cap_shown",
        "volume_24h_shown",
        "market_cap_rank",
    ]


def best_rank():
    """The asset's best market-cap rank over its latest quotes (a correlated subquery)."""
    return Subquery(
        LatestQuote.objects.filter(asset=OuterRef("pk"), market_cap_rank__isnull=False)
        .order_by("market_cap_rank")
        .values("market_cap_rank")[:1]
    )


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ["slug", "symbol", "name", "rank", "updated_at"]
    search_fields = ["slug", "symbol", "name"]
    ordering = ["slug"]
    inlines = [SourceAssetInline, LatestQuoteInline]
    change_form_template = "admin/crypto/asset/change_form.html"

    class Media:
        css = {"all": ["dashboard/admin.css"]}

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The asset page's price chart (daily buckets over its whole history) above the form."""
        asset = self.get_object(request, object_id)
        if asset is not None:
            extra_context = {
                **(extra_context or {}),
                "chart": chart_series(asset=asset, span="all", interval="day"),
                "chart_interval": "day",
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(rank=best_rank())

    @admin.display(description="rank", ordering=F("rank").asc(nulls_last=True))
    def rank(self, obj: Asset) -> int | None:
        return obj.rank


@admin.register(SourceAsset)
class SourceAssetAdmin(admin.ModelAdmin):
    list_display = ["source", "key", "asset", "match_method", "confidence", "created_at"]
    list_filter = ["source", "match_method"]
    search_fields = ["key", "asset__slug", "asset__symbol", "asset__name"]
    list_select_related = ["asset"]
    raw_id_fields = ["asset"]
    ordering = ["source", "key"]


class QuoteSourceFilter(admin.SimpleListFilter):
    """Sources that have quotes, read from LatestQuote rather than DISTINCT over the series."""

    title = "source"
    parameter_name = "source"

    def lookups(self, request, model_admin):
        sources = LatestQuote.objects.order_by("source").values_list("source", flat=True)
        return [(s, s) for s in sources.distinct()]

    def queryset(self, request, queryset):
        return queryset.filter(source=self.value()) if self.value() else queryset


class AssetFilter(admin.SimpleListFilter):
    """The best-ranked assets (from LatestQuote) plus the selected one: never a quote scan."""

    title = "asset"
    parameter_name = "asset"

    def _selected_id(self) -> int | None:
        value = self.value()
        if not value:
            return None
        try:
            return int(value)
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from exc

    def lookups(self, request, model_admin):
        # Ranks come from the rank index of LatestQuote; an asset has a row per source.
        ranked = (
            LatestQuote.objects.filter(market_cap_rank__isnull=False)
            .order_by("market_cap_rank", "asset_id")
            .values_list("asset_id", "asset__name", "asset__symbol")
        )
        top: dict[int, str] = {}
        for pk, name, symbol in ranked[: TOP_ASSETS * 4]:
            if len(top) < TOP_ASSETS:
                top.setdefault(pk, f"{name} ({symbol})")
        selected = self._selected_id()
        if selected is not None and selected not in top:
            for pk, name, symbol in Asset.objects.filter(pk=selected).values_list(
                "pk", "name", "symbol"
            ):
                top[pk] = f"{name} ({symbol})"
        return [(str(pk), label) for pk, label in top.items()]

    def queryset(self, request, queryset):
        selected = self._selected_id()
        return queryset if selected is None else queryset.filter(asset_id=selected)


@admin.register(Quote)
class QuoteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "observed_at",
        "asset",
        "source",
        PRICE,
        CAP,
        VOLUME,
        CHANGE,
        "market_cap_rank",
        "ingested_at",
    ]
    list_filter = [QuoteSourceFilter, AssetFilter]
    search_fields = ["asset__slug", "asset__symbol"]
    list_select_related = ["asset"]
    date_hierarchy = "observed_at"
    # Newest first straight from the (observed_at, id) index, in any date drill-down too.
    ordering = ["-observed_at", "-pk"]
    show_full_result_count = False
    paginator = BoundedCountPaginator


@admin.register(LatestQuote)
class LatestQuoteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "asset",
        "source",
        "market_cap_rank",
        PRICE,
        CAP,
        VOLUME,
        CHANGE,
        "observed_at",
    ]
    list_filter = ["source"]
    search_fields = ["asset__slug", "asset__symbol", "asset__name"]
    list_select_related = ["asset"]
    ordering = [F("market_cap_rank").asc(nulls_last=True), "source", "asset__slug"]


class MentionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ArticleAsset
    fields = ["asset", "matched_by"]
    verbose_name = "mentioned asset"
    verbose_name_plural = "mentioned assets"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("asset")


@admin.register(Article)
class ArticleAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["title", "feed", "published_at", "author", "fetched_at"]
    list_filter = ["feed"]
    search_fields = ["title", "summary", "guid"]
    date_hierarchy = "published_at"
    ordering = ["-published_at"]
    inlines = [MentionInline]
    show_full_result_count = False
    fields = [
        "title",
        "url",
        "feed",
        "guid",
        "author",
        "published_at",
        "summary",
        "fetched_at",
        "updated_at",
        "content_hash",
    ]
