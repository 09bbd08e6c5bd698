"""Identity resolution: map each market item to exactly one canonical Asset.

Rules, in order:
1. A (source, key) seen before resolves through its SourceAsset row.
2. A CoinGecko id (CoinGecko itself, or a CSV `coin_id`) is authoritative: the asset with that
   slug, created if new. A row whose symbol contradicts the asset it names is quarantined.
3. Otherwise symbol plus fuzzy name (thefuzz) among the assets that carry the symbol. A clear
   winner is taken with its score as confidence; no candidate, a missing name, a weak match or
   two close candidates send the row to quarantine. A symbol alone never decides.

Runs inside the page transaction: assets and identities it creates commit with the page.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings
from django.utils import timezone
from thefuzz import fuzz

from crypto.models import Asset, SourceAsset
from etl.exceptions import ItemError
from etl.sources.base import MarketItem

AUTHORITATIVE_SOURCE = "coingecko"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,199}$")
# The best candidate must beat the runner-up by this much to be a clear winner.
MIN_MARGIN = 10


def _chunks(values: list, size: int = 500) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def name_score(name: str, asset_name: str, asset_slug: str) -> int:
    """How well a row's coin name matches an asset, 0-100."""
    if name.casefold() == asset_name.casefold():
        return 100
    return max(
        fuzz.token_sort_ratio(name, asset_name),
        fuzz.token_sort_ratio(name, asset_slug.replace("-", " ")),
    )


class IdentityResolver:
    """Resolves batches of items for one source; caches what it learns for the run."""

    def __init__(self, *, source: str, min_score: int | None = None) -> None:
        self.source = source
        self.authoritative = source == AUTHORITATIVE_SOURCE
        self.min_score = settings.ETL_FUZZY_MIN_SCORE if min_score is None else min_score
        self.cache: dict[str, int] = {}

    def resolve(
        self, items: list[MarketItem]
    ) -> tuple[list[tuple[int, MarketItem]], list[tuple[MarketItem, ItemError]]]:
        """Split items into (asset_id, item) pairs and (item, error) pairs."""
        self._load_known({i.source_key for i in items} - self.cache.keys())
        pending = [i for i in items if i.source_key not in self.cache]
        errors: dict[str, ItemError] = {}
        if pending:
            by_id = [i for i in pending if i.coingecko_id]
            by_name = [i for i in pending if not i.coingecko_id]
            errors.update(self._resolve_by_id(by_id))
            errors.update(self._resolve_by_symbol(by_name))
        resolved, failed = [], []
        for item in items:
            asset_id = self.cache.get(item.source_key)
            if asset_id is not None:
                resolved.append((asset_id, item))
            else:
                failed.append(
                    (
                        item,
                        errors.get(item.source_key)
                        or ItemError(
                            "unresolved_identity", f"could not resolve {item.source_key!r}"
                        ),
                    )
                )
        return resolved, failed

    def _load_known(self, keys: set[str]) -> None:
        for chunk in _chunks(sorted(keys)):
            self.cache.update(
                SourceAsset.objects.filter(source=self.source, key__in=chunk).values_list(
                    "key", "asset_id"
                )
            )

    def _resolve_by_id(self, items: list[MarketItem]) -> dict[str, ItemError]:
        errors: dict[str, ItemError] = {}
        first: dict[str, MarketItem] = {}
        for item in items:
            if not _SLUG.match(item.coingecko_id or ""):
                errors[item.source_key] = ItemError(
                    "invalid_key", f"{item.coingecko_id!r} is not a valid CoinGecko id"
                )
            else:
                first.setdefault(item.coingecko_id, item)
        if not first:
            return errors

        assets = self._assets_by_slug(list(first))
        missing = [slug for slug in first if slug not in assets]
        if missing:
            Asset.objects.bulk_create(
                [Asset(slug=s, symbol=first[s].symbol, name=first[s].name or s) for s in missing],
                ignore_conflicts=True,
            )
            assets.update(self._assets_by_slug(missing))

        if self.authoritative:
            self._refresh_names(assets, first)

        method = (
            SourceAsset.Method.AUTHORITATIVE
            if self.authoritative
            else SourceAsset.Method.COINGECKO_ID
        )
        identities = []
        for slug, item in first.items():
            asset = assets[slug]
            if (
                item.symbol
                and asset.symbol
                and item.symbol != asset.symbol
                and not self.authoritative
            ):
                errors[item.source_key] = ItemError(
                    "identity_conflict",
                    f"coin id {slug!r} is {asset.symbol} ({asset.name}) but the row says "
                    f"{item.symbol}",
                )
                continue
            identities.append(self._identity(item, asset.pk, method, 100))
        self._save_identities(identities)
        return errors

    @staticmethod
    def _assets_by_slug(slugs: list[str]) -> dict[str, Asset]:
        found: dict[str, Asset] = {}
        for chunk in _chunks(slugs):
            found.update((a.slug, a) for a in Asset.objects.filter(slug__in=chunk))
        return found

    @staticmethod
    def _refresh_names(assets: dict[str, Asset], items: dict[str, MarketItem]) -> None:
        """CoinGecko is authoritative: follow its renames and ticker changes."""
        changed = []
        for slug, asset in assets.items():
            item = items[slug]
            if item.symbol and item.name and (asset.symbol, asset.name) != (item.symbol, item.name):
                asset.symbol, asset.name = item.symbol, item.name
                asset.updated_at = timezone.now()
                changed.append(asset)
        if changed:
            Asset.objects.bulk_update(changed, ["symbol", "name", "updated_at"])

    def _resolve_by_symbol(self, items: list[MarketItem]) -> dict[str, ItemError]:
        errors: dict[str, ItemError] = {}
        unique: dict[str, MarketItem] = {}
        for item in items:
            unique.setdefault(item.source_key, item)
        symbols = sorted({i.symbol for i in unique.values()})
        candidates: dict[str, list[Asset]] = defaultdict(list)
        for chunk in _chunks(symbols):
            for asset in Asset.objects.filter(symbol__in=chunk).order_by("pk"):
                candidates[asset.symbol].append(asset)

        identities = []
        for key, item in unique.items():
            options = candidates.get(item.symbol, [])
            if not options:
                errors[key] = ItemError(
                    "unknown_asset",
                    f"no known asset has the symbol {item.symbol}; add a coin_id column or "
                    f"ingest CoinGecko first",
                )
                continue
            if not item.name:
                errors[key] = ItemError(
                    "ambiguous_identity",
                    f"row has the symbol {item.symbol} but no name; a symbol alone is not an "
                    f"identity",
                )
                continue
            scored = sorted(
                ((name_score(item.name, a.name, a.slug), a) for a in options),
                key=lambda pair: -pair[0],
            )
            best_score, best = scored[0]
            runner_up = scored[1][0] if len(scored) > 1 else 0
            if best_score < self.min_score:
                errors[key] = ItemError(
                    "unresolved_identity",
                    f"{item.symbol} {item.name!r}: best match {best.slug!r} scores only "
                    f"{best_score} (< {self.min_score})",
                )
            elif best_score - runner_up < MIN_MARGIN:
                errors[key] = ItemError(
                    "ambiguous_identity",
                    f"{item.symbol} {item.name!r} matches {best.slug!r} ({best_score}) and "
                    f"{scored[1][1].slug!r} ({runner_up}) almost equally",
                )
            else:
                identities.append(
                    self._identity(item, best.pk, SourceAsset.Method.SYMBOL_NAME, best_score)
                )
        self._save_identities(identities)
        return errors

    def _identity(self, item: MarketItem, asset_id: int, method: str, confidence: int):
        return SourceAsset(
            source=self.source,
            key=item.source_key[:300],
            asset_id=asset_id,
            symbol=item.symbol[:50],
            name=item.name[:200],
            match_method=method,
            confidence=confidence,
        )

    def _save_identities(self, identities: list[SourceAsset]) -> None:
        if not identities:
            return
        SourceAsset.objects.bulk_create(identities, ignore_conflicts=True)
        self._load_known({i.key for i in identities})
