"""Load: one loader per kind of data (`market`, `news`), chosen by the source plug-in's kind
(which the catalogue and a system check keep in step)."""

from __future__ import annotations

from etl.pipeline.load.articles import ArticleLoader
from etl.pipeline.load.base import Loader, LoadResult, RunSeen
from etl.pipeline.load.quotes import QuoteLoader
from etl.sources.base import Source

LOADERS: dict[str, type[Loader]] = {
    QuoteLoader.kind: QuoteLoader,
    ArticleLoader.kind: ArticleLoader,
}

__all__ = ["LOADERS", "LoadResult", "Loader", "RunSeen", "loader_class"]


def loader_class(source: Source) -> type[Loader]:
    return LOADERS[source.kind]
