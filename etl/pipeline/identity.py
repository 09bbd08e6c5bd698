"""Identity resolution: map each market item to exactly one canonical Asset.

Rules, in order:
1. A (source, key) seen before resolves through its SourceAsset row.
2. A CoinGecko id (CoinGecko itself, or a CSV `coin_id`) names the asset with that slug. A row
   whose symbol contradicts the asset it names is quarantined. An id not seen before is
   created as a new asset by CoinGecko; from other sources it first looks for a coin we know
   by symbol and name (never two assets for one coin), and becomes a new asset only when the
   evidence says it is a different coin.
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
from kasparro.core.catalogue import authoritative_source

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
        self.authoritative = source == authoritative_source()
        self.min_score = settings.ETL_FUZZY_MIN_SCORE if min_score is None else min_score
        self.cache: dict[str, int] = {}

    def resolve_keys(self, items: list[MarketItem]) -> tuple[dict[str, int], dict[str, ItemError]]:
        """Resolve the distinct source keys of `items`: (key -> asset id, key -> error)."""
        first: dict[str, MarketItem] = {}
        for item in items:
            if item.source_key not in first:
                first[item.source_key] = item
        cache = self.cache
        unknown = [key for key in first if key not in cache]
        errors: dict[str, ItemError] = {}
        if unknown:
            self._load_known(set(unknown))
            pending = [first[key] for key in unknown if key not in cache]
            errors.update(self._resolve_by_id([i for i in pending if i.coingecko_id]))
            errors.update(self._resolve_by_symbol([i for i in pending if not i.coingecko_id]))
            for item in pending:
                if item.source_key not in cache and item.source_key not in errors:
                    errors[item.source_key] = ItemError(
                        "unresolved_identity", f"could not resolve {item.source_key!r}"
                    )
        return {key: cache[key] for key in first if key in cache}, errors

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
        identities = []
        if missing and not self.authoritative:
            # An id CoinGecko has not shown us yet may still name a coin we know under another
            # id: the same symbol and name is evidence enough. A clearly different coin (or
            # no coin with that symbol) gets its own asset; a close call is quarantined.
            candidates = self._assets_by_symbol({first[slug].symbol for slug in missing})
            still_missing = []
            for slug in missing:
                item = first[slug]
                asset, score, error = self._match(item, candidates.get(item.symbol, []))
                if asset is not None:
                    identities.append(
                        self._identity(item, asset.pk, SourceAsset.Method.SYMBOL_NAME, score)
                    )
                    del first[slug]
                elif error is not None and error.code == "ambiguous_identity":
                    errors[item.source_key] = error
                    del first[slug]
                else:
                    still_missing.append(slug)
            missing = still_missing
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

    @staticmethod
    def _assets_by_symbol(symbols: set[str]) -> dict[str, list[Asset]]:
        candidates: dict[str, list[Asset]] = defaultdict(list)
        for chunk in _chunks(sorted(symbols)):
            for asset in Asset.objects.filter(symbol__in=chunk).order_by("pk"):
                candidates[asset.symbol].append(asset)
        return candidates

    def _match(
        self, item: MarketItem, options: list[Asset]
    ) -> tuple[Asset | None, int, ItemError | None]:
        """The one asset among same-symbol `options` whose name clearly matches the item's."""
        if not options:
            return (
                None,
                0,
                ItemError(
                    "unknown_asset",
                    f"no known asset has the symbol {item.symbol}; add a coin_id column or "
                    f"ingest CoinGecko first",
                ),
            )
        if not item.name:
            return (
                None,
                0,
                ItemError(
                    "ambiguous_identity",
                    f"row has the symbol {item.symbol} but no name; a symbol alone is not an "
                    f"identity",
                ),
            )
        scored = sorted(
            ((name_score(item.name, a.name, a.slug), a) for a in options),
            key=lambda pair: -pair[0],
        )
        best_score, best = scored[0]
        runner_up = scored[1][0] if len(scored) > 1 else 0
        if best_score < self.min_score:
            return (
                None,
                best_score,
                ItemError(
                    "unresolved_identity",
                    f"{item.symbol} {item.name!r}: best match {best.slug!r} scores only "
                    f"{best_score} (< {self.min_score})",
                ),
            )
        # An exact name is decisive; otherwise the winner must be clear.
        if best_score - runner_up < MIN_MARGIN and not (best_score == 100 > runner_up):
            return (
                None,
                best_score,
                ItemError(
                    "ambiguous_identity",
                    f"{item.symbol} {item.name!r} matches {best.slug!r} ({best_score}) and "
                    f"{scored[1][1].slug!r} ({runner_up}) almost equally",
                ),
            )
        return best, best_score, None

    def _resolve_by_symbol(self, items: list[MarketItem]) -> dict[str, ItemError]:
        errors: dict[str, ItemError] = {}
        unique: dict[str, MarketItem] = {}
        for item in items:
            unique.setdefault(item.source_key, item)
        candidates = self._assets_by_symbol({i.symbol for i in unique.values()})
        identities = []
        for key, item in unique.items():
            asset, score, error = self._match(item, candidates.get(item.symbol, []))
            if asset is None:
                errors[key] = error
            else:
                identities.append(
                    self._identity(item, asset.pk, SourceAsset.Method.SYMBOL_NAME, score)
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
