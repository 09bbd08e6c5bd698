"""URL configuration: the REST API at the root (the original service's paths), admin, docs."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import path, register_converter
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from crypto import views as crypto_views
from crypto.api import AssetDetailApi, AssetHistoryApi, AssetListApi, DataApi, NewsApi
from kasparro.core.metrics import metrics_view
from runs import views as runs_views
from runs.api import CompareRunsApi, RunDetailApi, RunListApi, StatsApi
from runs.health import HealthApi


class KeyConverter:
    """A key in a path (an asset slug): any printable text without a slash. A NUL or another
    control character is a 404, never a value that reaches the database."""

    regex = r"[^/\x00-\x1f\x7f]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(KeyConverter, "key")


class FaviconView(RedirectView):
    """/favicon.ico, which browsers ask every site for, to the dashboard's icon (its static
    URL resolved per request, so a missing manifest entry never breaks the URLconf)."""

    permanent = True

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("dashboard/favicon.svg")


urlpatterns = [
    # The dashboard, for people (paths outside the JSON API's).
    path("", crypto_views.markets, name="home"),
    path("coins/<key:slug>/", crypto_views.asset_page, name="coin"),
    path("articles/", crypto_views.articles, name="articles"),
    path("pipeline/", runs_views.pipeline, name="pipeline"),
    # Browsers ask every page's site for /favicon.ico (admin, API docs): the dashboard's icon.
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
    # The JSON API.
    path("health", HealthApi.as_view(), name="health"),
    path("metrics", metrics_view, name="metrics"),
    path("data", DataApi.as_view(), name="data"),
    path("assets", AssetListApi.as_view(), name="asset-list"),
    path("assets/<key:slug>", AssetDetailApi.as_view(), name="asset-detail"),
    path("assets/<key:slug>/history", AssetHistoryApi.as_view(), name="asset-history"),
    path("news", NewsApi.as_view(), name="news"),
    path("stats", StatsApi.as_view(), name="stats"),
    path("runs", RunListApi.as_view(), name="run-list"),
    path("runs/<uuid:run_id>", RunDetailApi.as_view(), name="run-detail"),
    path("compare-runs", CompareRunsApi.as_view(), name="compare-runs"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("admin/", admin.site.urls),
]

handler400 = "kasparro.core.errors.bad_request"
handler403 = "kasparro.core.errors.permission_denied"
handler404 = "kasparro.core.errors.page_not_found"
handler500 = "kasparro.core.errors.server_error"
