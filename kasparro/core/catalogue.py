"""The source catalogue: every source's name, kind, aliases and plug-in, in one place.

Read by settings (drift policies name sources), the API's parameters (which names `source`
accepts, which kind each lists), the ETL registry (which class runs each name) and health and
metrics (which sources to report). A Django system check (etl.checks) keeps the registry and
this list in step. Adding a source means one plug-in module and one line here.

Pure Python, no Django: settings import it.
"""

from __future__ import annotations

import dataclasses

MARKET, NEWS = "market", "news"


@dataclasses.dataclass(frozen=True)
class SourceEntry:
    name: str
    kind: str  # MARKET (quotes) or NEWS (articles)
    label: str  # for people: "CoinGecko"
    plugin: str  # dotted path of the etl.sources class
    aliases: tuple[str, ...] = ()  # other names accepted where a source is named
    # Its ids are the canonical asset slugs, and its ranks the ones that order assets.
    authoritative: bool = False


CATALOGUE: tuple[SourceEntry, ...] = (
    SourceEntry(
        "coingecko",
        MARKET,
        "CoinGecko",
        "etl.sources.coingecko.CoinGeckoSource",
        authoritative=True,
    ),
    # `rss_feed` is the original service's name for it; its clients still send it.
    SourceEntry("rss", NEWS, "RSS/Atom feeds", "etl.sources.rss.RssSource", ("rss_feed",)),
    SourceEntry("csv", MARKET, "CSV drops", "etl.sources.csv.CsvSource"),
)

assert sum(entry.authoritative for entry in CATALOGUE) == 1, "exactly one authoritative source"
_BY_NAME = {entry.name: entry for entry in CATALOGUE}
_NAMES = {alias: entry.name for entry in CATALOGUE for alias in (entry.name, *entry.aliases)}


def source_names(kind: str | None = None) -> list[str]:
    """Canonical names, in catalogue order; of one kind if given."""
    return [entry.name for entry in CATALOGUE if kind is None or entry.kind == kind]


def source_names_and_aliases() -> list[str]:
    """Every name a `source` parameter accepts as it is spelled on the wire: canonical names,
    then aliases."""
    return [*source_names(), *(a for entry in CATALOGUE for a in entry.aliases)]


def authoritative_source() -> str:
    """The source whose coin ids are the canonical asset slugs (CoinGecko)."""
    return next(entry.name for entry in CATALOGUE if entry.authoritative)


def aliases_text() -> str:
    """`rss_feed` (for rss)…: the aliases, for parameter help and messages."""
    return ", ".join(f"{a} (for {e.name})" for e in CATALOGUE for a in e.aliases)


def canonical_name(name: str) -> str | None:
    """The canonical name for a name or alias (any case, surrounding blanks ignored); None if
    no source is called that."""
    return _NAMES.get(name.strip().lower())


def source_entry(name: str) -> SourceEntry:
    """The entry for a name or alias; KeyError naming the known sources otherwise."""
    canonical = canonical_name(name)
    if canonical is None:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(_BY_NAME)}")
    return _BY_NAME[canonical]


# The Celery task that ingests one source (defined in etl.tasks), named here because runs
# enqueues it by name (runs never imports etl) and beat schedules name it.
INGEST_TASK = "etl.ingest"


def schedule_name(source: str) -> str:
    """The name of a source's beat schedule (created by etl, read by health)."""
    return f"{INGEST_TASK}:{source}"
