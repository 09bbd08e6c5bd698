from django.contrib import admin

from crypto.models import Article, ArticleAsset, Asset, LatestQuote, Quote, SourceAsset


class SourceAssetInline(admin.TabularInline):
    model = SourceAsset
    extra = 0
    fields = ["source", "key", "symbol", "name", "match_method", "confidence", "created_at"]
    readonly_fields = fields


class LatestQuoteInline(admin.TabularInline):
    model = LatestQuote
    extra = 0
    fields = ["source", "observed_at", "price_usd", "market_cap", "volume_24h", "market_cap_rank"]
    readonly_fields = fields
    can_delete = False


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ["slug", "symbol", "name", "updated_at"]
    search_fields = ["slug", "symbol", "name"]
    ordering = ["slug"]
    inlines = [SourceAssetInline, LatestQuoteInline]


@admin.register(SourceAsset)
class SourceAssetAdmin(admin.ModelAdmin):
    list_display = ["source", "key", "asset", "match_method", "confidence", "created_at"]
    list_filter = ["source", "match_method"]
    search_fields = ["key", "asset__slug", "asset__symbol", "asset__name"]
    list_select_related = ["asset"]
    raw_id_fields = ["asset"]


@admin.register(Quote)
class QuoteAdmin(admin.ModelAdmin):
    list_display = [
        "asset",
        "source",
        "observed_at",
        "price_usd",
        "market_cap",
        "volume_24h",
        "price_change_24h",
        "market_cap_rank",
    ]
    list_filter = ["source"]
    search_fields = ["asset__slug", "asset__symbol"]
    list_select_related = ["asset"]
    date_hierarchy = "observed_at"
    show_full_result_count = False
    raw_id_fields = ["asset"]
    ordering = ["-observed_at"]


class MentionInline(admin.TabularInline):
    model = ArticleAsset
    extra = 0
    raw_id_fields = ["asset"]


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "feed", "published_at", "author"]
    list_filter = ["feed"]
    search_fields = ["title", "summary", "guid"]
    date_hierarchy = "published_at"
    ordering = ["-published_at"]
    inlines = [MentionInline]
    show_full_result_count = False
