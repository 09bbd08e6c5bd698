"""The soak's CSV drop folder: rows appended to existing files, new files now and then, each
row with its own timestamp, all recorded as written."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import random
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from tests.soak.upstreams.coingecko import coins
from tests.soak.upstreams.common import Clock, wiggle


@dataclass(frozen=True)
class CsvRow:
    coin: str
    observed_at: dt.datetime
    price: Decimal


class CsvDrop:
    """A drop folder fed by `tick()`: rows appended to existing files, new files now and then.
    Every row has its own timestamp, so (coin, observed_at) is unique across the folder."""

    HEADER = "coin_id,symbol,name,price_usd,observed_at\n"

    def __init__(self, folder: Path, clock: Clock, seed: int) -> None:
        self.folder, self.clock = folder, clock
        self.rng = random.Random(seed + 2)
        folder.mkdir(parents=True, exist_ok=True)
        # Coins whose symbol no other coin shares: a CSV row with an id CoinGecko has not
        # shown yet is matched by symbol and name, and a shared symbol would be ambiguous.
        known = coins()
        symbols = [c["symbol"] for c in known]
        self.coins = [c for c in known[:100] if symbols.count(c["symbol"]) == 1][:40]
        self.rows: list[CsvRow] = []
        self.files: list[Path] = []
        self.ticks = 0
        self.lock = threading.Lock()
        self._new_file()

    def _lines(self, count: int) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for _ in range(count):
            coin = self.rng.choice(self.coins)
            at = self.clock.wall_start + dt.timedelta(seconds=len(self.rows))
            price = Decimal(repr(coin["current_price"])) * wiggle(coin["id"], len(self.rows))
            price = price.quantize(Decimal("1e-10")).normalize()
            self.rows.append(CsvRow(coin["id"], at, price))
            writer.writerow(
                [coin["id"], coin["symbol"], coin["name"], f"{price:f}", at.isoformat()]
            )
        return out.getvalue()

    def _new_file(self) -> None:
        path = self.folder / f"drop-{len(self.files) + 1:03d}.csv"
        partial = path.with_suffix(".part")  # not *.csv: never read half written
        partial.write_text(self.HEADER + self._lines(self.rng.randint(3, 6)))
        os.replace(partial, path)
        self.files.append(path)

    def _append(self) -> None:
        path = self.rng.choice(self.files)
        data = self._lines(self.rng.randint(1, 4)).encode()
        # One write of whole lines: a reader never sees half a row (it would wait for it).
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def tick(self) -> None:
        with self.lock:
            if self.clock.frozen:
                return
            self.ticks += 1
            if self.ticks % 10 == 0:
                self._new_file()
            else:
                self._append()

    def written(self) -> list[CsvRow]:
        with self.lock:
            return list(self.rows)
