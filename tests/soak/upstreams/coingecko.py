"""CoinGecko's `/api/v3/coins/markets` for the soak: 3 pages of 50 coins (the 100 fixture coins
plus 50 made up), each page answered after 0.3-1.5 s. Every `EPOCH_SECONDS` each coin gets a
new `last_updated` and a new price, both pure functions of (coin, epoch). It records every
quote it served in a 200 answer, and answers 429 (`Retry-After: 2`) or 5xx while told to."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from dataclasses import dataclass
from decimal import Decimal

from werkzeug import Request, Response

from tests.soak.upstreams.common import Clock, Faults, HttpServer, wiggle
from tests.support import ROOT

EPOCH_SECONDS = 30
PAGES, PER_PAGE = 3, 50
API_KEY = "soak-demo-key"


def coins() -> list[dict]:
    fixtures = ROOT / "tests" / "fixtures" / "coingecko"
    coins = [
        item
        for n in (1, 2)
        for item in json.loads((fixtures / f"markets_page{n}.json").read_text())
    ]
    template = coins[-1]
    for n in range(len(coins) + 1, PAGES * PER_PAGE + 1):
        coins.append(
            {
                **template,
                "id": f"soak-coin-{n}",
                "symbol": f"sk{n}",
                "name": f"Soak Coin {n}",
                "current_price": round(0.5 + n / 10, 2),
            }
        )
    return coins


@dataclass(frozen=True)
class ServedQuote:
    coin: str
    observed_at: dt.datetime
    price: Decimal


class CoinGecko:
    """`/api/v3/coins/markets`, paged, prices and times advancing per epoch."""

    def __init__(self, clock: Clock, faults: Faults, seed: int) -> None:
        self.clock, self.faults = clock, faults
        self.coins = coins()
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.served: set[ServedQuote] = set()
        self.answers: dict[int, int] = {}
        self.server = HttpServer(self.app)

    @property
    def base_url(self) -> str:
        return f"{self.server.base_url}/api/v3"

    def epoch(self) -> int:
        return int(self.clock.elapsed() // EPOCH_SECONDS)

    def item(self, index: int, epoch: int) -> dict:
        coin = self.coins[index]
        # Milliseconds per coin: two coins never share a time, epochs never overlap.
        at = self.clock.wall_start + dt.timedelta(seconds=epoch * EPOCH_SECONDS, milliseconds=index)
        price = Decimal(repr(coin["current_price"])) * wiggle(coin["id"], epoch)
        return {
            **coin,
            "current_price": float(f"{price:.6g}"),
            "market_cap_rank": index + 1,
            "last_updated": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }

    def served_quotes(self) -> set[ServedQuote]:
        """Every quote that was in a page answered with 200 (a copy: the server keeps going)."""
        with self.lock:
            return set(self.served)

    def final_epoch_quotes(self) -> set[ServedQuote]:
        epoch = self.epoch()
        return {self._served(self.item(i, epoch)) for i in range(len(self.coins))}

    @staticmethod
    def _served(item: dict) -> ServedQuote:
        return ServedQuote(
            item["id"],
            dt.datetime.fromisoformat(item["last_updated"]),
            Decimal(repr(item["current_price"])),
        )

    def _answer(self, status: int, body: object, headers: dict | None = None) -> Response:
        with self.lock:
            self.answers[status] = self.answers.get(status, 0) + 1
        return Response(
            json.dumps(body), status=status, headers=headers, content_type="application/json"
        )

    @Request.application
    def app(self, request: Request) -> Response:
        if request.path != "/api/v3/coins/markets":
            return self._answer(404, {"error": "not found"})
        with self.lock:
            latency = self.rng.uniform(0.3, 1.5)
            server_error = self.rng.choice((500, 502, 503))
        time.sleep(latency)
        if request.headers.get("x-cg-demo-api-key") != API_KEY:
            return self._answer(401, {"error": "missing or wrong API key"})
        if self.faults.hit("coingecko_429"):
            body = {"status": {"error_code": 429, "error_message": "You've exceeded the Rate"}}
            return self._answer(429, body, {"Retry-After": "2"})
        if self.faults.hit("coingecko_5xx"):
            return self._answer(server_error, {"error": "upstream trouble"})
        page = int(request.args.get("page", "1"))
        per_page = int(request.args.get("per_page", "100"))
        epoch = self.epoch()
        first = (page - 1) * per_page
        items = [self.item(i, epoch) for i in range(first, min(first + per_page, len(self.coins)))]
        response = self._answer(200, items)
        with self.lock:
            self.served.update(self._served(item) for item in items)
        return response
