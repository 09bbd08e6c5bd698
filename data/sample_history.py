"""Writes csv_drop/sample_history_7d_2025-12-28.csv: seven days of hourly prices before the
CoinGecko top-100 snapshot (coingecko_top100_2025-12-28.csv), so that a newcomer's `make run`
shows 7-day sparklines and history charts with no internet and no week of waiting.

The prices are MADE UP — a seeded random walk ending at each coin's real snapshot price
(stablecoins stay within a few basis points of their peg) — and the file says so in its name
and in data/README.md. Run it again and the file comes out byte-identical:

    .venv/bin/python data/sample_history.py
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SNAPSHOT = HERE / "csv_drop" / "coingecko_top100_2025-12-28.csv"
OUTPUT = HERE / "csv_drop" / "sample_history_7d_2025-12-28.csv"
HOURS = 7 * 24
HOURLY_VOLATILITY = 0.006  # about 7 % over a week, a calm week for the large caps
PEG_VOLATILITY = 0.0002


def main() -> None:
    with SNAPSHOT.open(newline="") as snapshot:
        coins = list(csv.DictReader(snapshot))
    rows = []
    for coin in coins:
        price = float(coin["price_usd"])
        pegged = 0.97 < price < 1.03
        rng = random.Random(coin["coin_id"])  # noqa: S311 - a str seed: the same file every run
        last = dt.datetime.fromisoformat(coin["last_updated"].replace("Z", "+00:00"))
        hour = last.replace(minute=0, second=0, microsecond=0)
        series = []
        for back in range(1, HOURS + 1):  # backwards from the snapshot
            if pegged:
                price = 1 + (price - 1) * 0.8 + rng.gauss(0, PEG_VOLATILITY)
            else:
                price *= math.exp(rng.gauss(0, HOURLY_VOLATILITY))
            series.append((hour - dt.timedelta(hours=back), price))
        for at, value in reversed(series):
            rows.append(
                {
                    "coin_id": coin["coin_id"],
                    "name": coin["name"],
                    "symbol": coin["symbol"],
                    "price_usd": f"{value:.6g}",
                    "last_updated": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
    with OUTPUT.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(coins[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{OUTPUT.name}: {len(rows)} rows for {len(coins)} coins")


if __name__ == "__main__":
    main()
