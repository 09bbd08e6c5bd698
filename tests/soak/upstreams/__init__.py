"""Local upstreams for the soak, moving over time and recording everything they served:
CoinGecko `/coins/markets` (`coingecko.py`), RSS feeds (`feeds.py`) and a CSV drop folder
(`csvdrop.py`), sharing one clock and one set of fault windows (`common.py`).

`freeze()` stops all movement (the quiet period) and every fault. Nothing here knows the
project: what was served is compared with the database afterwards.
"""

from __future__ import annotations

import threading
from pathlib import Path

from tests.soak.upstreams.coingecko import API_KEY, PAGES, PER_PAGE, CoinGecko, ServedQuote
from tests.soak.upstreams.common import Clock, Faults
from tests.soak.upstreams.csvdrop import CsvDrop, CsvRow
from tests.soak.upstreams.feeds import Feeds

__all__ = ["CsvRow", "ServedQuote", "Upstreams"]


class Upstreams:
    """All three upstreams, their shared clock and fault windows, and the CSV writer thread."""

    def __init__(self, drop_dir: Path, seed: int, csv_every: float = 4.0) -> None:
        self.clock = Clock()
        self.faults = Faults()
        self.coingecko = CoinGecko(self.clock, self.faults, seed)
        self.feeds = Feeds(self.clock, self.faults, seed)
        self.csv = CsvDrop(drop_dir, self.clock, seed)
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write, args=(csv_every,), daemon=True)
        self._writer.start()

    def _write(self, every: float) -> None:
        while not self._stop.wait(every):
            self.csv.tick()

    def env(self) -> dict[str, str]:
        """The settings that point the project at these upstreams."""
        return {
            "COINGECKO_BASE_URL": self.coingecko.base_url,
            "COINGECKO_API_KEY": API_KEY,
            "COINGECKO_PAGES": str(PAGES),
            "COINGECKO_PER_PAGE": str(PER_PAGE),
            "RSS_FEED_URLS": ",".join(self.feeds.urls),
            "CSV_DROP_DIR": str(self.csv.folder),
        }

    def freeze(self) -> None:
        """The quiet period: no new prices, items or rows, and no more faults."""
        with self.csv.lock:
            self.clock.freeze()
        self.faults.clear()

    def close(self) -> None:
        self._stop.set()
        self._writer.join(timeout=5)
        self.coingecko.server.close()
        self.feeds.server.close()
