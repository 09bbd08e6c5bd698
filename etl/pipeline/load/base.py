"""What every loader shares: its result, what a run saw, and the loader's shape."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any, ClassVar, Protocol

from django.utils import timezone

from crypto.models import Asset
from runs.models import Run

Good = list[tuple[Any, Any]]  # (raw item, normalized item)
Bad = list[tuple[Any, str, str]]  # (raw item, reason code, reason)


@dataclasses.dataclass
class LoadResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


class RunSeen:
    """What a run loaded, kept small: the newest price per asset and the newest data time."""

    def __init__(self) -> None:
        self.prices: dict[int, tuple[dt.datetime, Any]] = {}
        self.newest: dt.datetime | None = None

    def add_price(self, asset_id: int, observed_at: dt.datetime, price: Any) -> None:
        """An asset's newest price of a page; a later page wins a tie."""
        known = self.prices.get(asset_id)
        if known is None or observed_at >= known[0]:
            self.prices[asset_id] = (observed_at, price)
        if self.newest is None or observed_at > self.newest:
            self.newest = observed_at

    def add_articles(self, items: list[Any]) -> None:
        for item in items:
            if item.published_at and (self.newest is None or item.published_at > self.newest):
                self.newest = item.published_at

    def store(self, run_id: uuid.UUID) -> None:
        """Record it on the run, for comparisons and freshness."""
        slugs = dict(Asset.objects.filter(pk__in=list(self.prices)).values_list("pk", "slug"))
        prices = {
            slugs[asset_id]: (str(price) if price is not None else None)
            for asset_id, (_, price) in self.prices.items()
            if asset_id in slugs
        }
        lag = (timezone.now() - self.newest).total_seconds() if self.newest else None
        Run.objects.filter(pk=run_id).update(asset_prices=prices or None, freshness_lag_seconds=lag)


class Loader(Protocol):
    """Loads one kind of normalized item (quotes, articles) inside a page's transaction.

    A loader lives for one run (or one replay) and caches what its transactions taught it;
    `reset` forgets it after a rollback. `pre_load` is pure work done ahead, in the read-ahead
    thread; its result comes back to `load` beside the items."""

    kind: ClassVar[str]

    def __init__(self, *, source: str, seen: RunSeen | None = None) -> None: ...

    @staticmethod
    def pre_load(good: Good) -> Any: ...

    def reset(self) -> None: ...

    def load(self, good: Good, extras: Any, bad: Bad) -> LoadResult:
        """Upsert the good items; items that cannot load are appended to `bad`."""
        ...
