"""The registry of sources. Adding a source means one module and one line here."""

from __future__ import annotations

from etl.sources.base import Source
from etl.sources.coingecko import CoinGeckoSource
from etl.sources.csv import CsvSource
from etl.sources.rss import RssSource

REGISTRY: dict[str, type[Source]] = {
    CoinGeckoSource.name: CoinGeckoSource,
    RssSource.name: RssSource,
    CsvSource.name: CsvSource,
}

# Names the original service used, still accepted where a source name is given.
ALIASES = {"rss_feed": "rss"}


def source_names() -> list[str]:
    return list(REGISTRY)


def canonical_name(name: str) -> str:
    name = name.strip().lower()
    return ALIASES.get(name, name)


def get_source_class(name: str) -> type[Source]:
    try:
        return REGISTRY[canonical_name(name)]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(REGISTRY)}") from None


def build_source(name: str) -> Source:
    """An instance configured from settings."""
    return get_source_class(name)()
