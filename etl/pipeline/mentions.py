"""Which assets a news text mentions: by name, by ticker, or by `$TICKER`.

Some tickers and names are everyday words (`ONE`, `GAS`, `SUN`, "Story", "Sky"): those count
only as a cashtag (`$ONE`) or right next to the coin's other label ("Harmony (ONE)",
"ONE (Harmony)"). Tickers shared by several assets (`SOL`: Solana and Wrapped SOL) go to the
one whose name the text also mentions, else to the best-ranked of them.
"""

from __future__ import annotations

import re
from collections import defaultdict

from crypto.models import Asset, LatestQuote
from kasparro.core.catalogue import authoritative_source

AMBIGUOUS_WORDS = frozenset(
    """
    act ai alt ape arc art band beam bit bond cake cat core cow dash dog four fun gas gate go
    hot hype id is key me mask meme move near new ocean one pi prime quant ray render rose
    rune safe sand sky sonic story sun super sushi tribe trump two us win flare stacks jupiter
    official world and are for the get big max usd
    """.split()  # noqa: SIM905 - a word list reads better as text
)

_WORD = r"(?<![\w$]){}(?![\w])"


def _is_ambiguous(label: str) -> bool:
    return len(label) <= 2 or label.casefold() in AMBIGUOUS_WORDS


class MentionMatcher:
    def __init__(self, assets: list[tuple[int, str, str, int | None]]) -> None:
        """`assets`: (asset_id, symbol, name, rank) with rank None when unknown."""
        self.rank = {asset_id: (rank or 10**9) for asset_id, _, _, rank in assets}
        self.by_symbol: dict[str, list[int]] = defaultdict(list)
        self.by_name: dict[str, list[int]] = defaultdict(list)
        self.symbol_of: dict[int, str] = {}
        self.name_of: dict[int, str] = {}
        for asset_id, symbol, name, _ in assets:
            self.by_symbol[symbol.upper()].append(asset_id)
            self.by_name[name].append(asset_id)
            self.symbol_of[asset_id] = symbol.upper()
            self.name_of[asset_id] = name

        safe_names = [n for n in self.by_name if len(n) >= 3 and not _is_ambiguous(n)]
        safe_tickers = [s for s in self.by_symbol if len(s) >= 3 and not _is_ambiguous(s)]
        self.name_re = _alternation(safe_names, flags=0)
        self.ticker_re = _alternation(safe_tickers, flags=0)
        self.cashtag_re = re.compile(r"(?<![\w$])\$([A-Za-z0-9]{1,10})(?![\w])")
        self.ambiguous = [
            asset_id
            for asset_id in self.symbol_of
            if _is_ambiguous(self.symbol_of[asset_id]) or _is_ambiguous(self.name_of[asset_id])
        ]

    @classmethod
    def from_database(cls) -> MentionMatcher:
        ranks = dict(
            LatestQuote.objects.filter(
                source=authoritative_source(), market_cap_rank__isnull=False
            ).values_list("asset_id", "market_cap_rank")
        )
        return cls(
            [
                (a_id, sym, name, ranks.get(a_id))
                for a_id, sym, name in Asset.objects.values_list("id", "symbol", "name")
            ]
        )

    def _best(self, candidates: list[int], text_names: set[int]) -> int:
        named = [c for c in candidates if c in text_names]
        pool = named or candidates
        return min(pool, key=lambda c: (self.rank[c], c))

    def match(self, text: str) -> list[tuple[int, str]]:
        """(asset_id, matched_by) for every asset the text mentions, each once."""
        found: dict[int, str] = {}
        named: set[int] = set()
        if self.name_re:
            for m in self.name_re.finditer(text):
                ids = self.by_name[m.group(0)]
                chosen = self._best(ids, set())
                named.add(chosen)
                found.setdefault(chosen, "name")
        for m in self.cashtag_re.finditer(text):
            ids = self.by_symbol.get(m.group(1).upper())
            if ids:
                found.setdefault(self._best(ids, named), "cashtag")
        if self.ticker_re:
            for m in self.ticker_re.finditer(text):
                found.setdefault(self._best(self.by_symbol[m.group(0)], named), "ticker")
        for asset_id in self.ambiguous:
            if asset_id not in found and self._adjacent(text, asset_id):
                found[asset_id] = "name"
        return sorted(found.items())

    def _adjacent(self, text: str, asset_id: int) -> bool:
        """'Harmony (ONE)', 'Harmony ONE', 'ONE (Harmony)'."""
        name, symbol = re.escape(self.name_of[asset_id]), re.escape(self.symbol_of[asset_id])
        if name.casefold() == symbol.casefold():
            return False
        pattern = (
            rf"(?<![\w$]){name}\s*\(?\$?{symbol}\b"  # Harmony (ONE), Harmony $ONE
            rf"|(?<![\w$]){symbol}\s*\({name}\)"  # ONE (Harmony)
        )
        return re.search(pattern, text) is not None


def _alternation(labels: list[str], *, flags: int) -> re.Pattern | None:
    if not labels:
        return None
    ordered = sorted(
        labels, key=len, reverse=True
    )  # longest first: "Bitcoin Cash" before "Bitcoin"
    return re.compile(_WORD.format("(?:" + "|".join(map(re.escape, ordered)) + ")"), flags)
