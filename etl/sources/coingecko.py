"""CoinGecko `/coins/markets`: pages of market data; the CoinGecko id is the coin's identity.

The API key travels only in a header (`x-cg-demo-api-key`, or `x-cg-pro-api-key` for the pro
host), never in the URL. The cursor is the next page to fetch: a run that fails after page k
resumes at page k+1; after the last page it points back to page 1 for the next cycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings

from etl.exceptions import ItemError, UpstreamError
from etl.http import HttpClient
from etl.parsing import clean_text, parse_decimal, parse_int, parse_timestamp
from etl.sources.base import Field, MarketItem, Page, Source


class CoinGeckoSource(Source):
    name = "coingecko"
    kind = "market"
    schema = (
        Field("id", "string", required=True),
        Field("symbol", "string", required=True),
        Field("name", "string", required=True),
        Field("current_price", "number", required=True),
        Field("market_cap", "number"),
        Field("market_cap_rank", "integer"),
        Field("total_volume", "number"),
        Field("price_change_percentage_24h", "number"),
        Field("last_updated", "timestamp", required=True),
        # The rest of a documented /coins/markets item: sent, not read, never drift.
        *(
            Field(name, kind, ignored=True)
            for name, kind in (
                ("image", "string"),
                ("fully_diluted_valuation", "number"),
                ("high_24h", "number"),
                ("low_24h", "number"),
                ("price_change_24h", "number"),
                ("market_cap_change_24h", "number"),
                ("market_cap_change_percentage_24h", "number"),
                ("circulating_supply", "number"),
                ("total_supply", "number"),
                ("max_supply", "number"),
                ("ath", "number"),
                ("ath_change_percentage", "number"),
                ("ath_date", "timestamp"),
                ("atl", "number"),
                ("atl_change_percentage", "number"),
                ("atl_date", "timestamp"),
                ("roi", "string"),
                ("price_change_percentage_1h_in_currency", "number"),
                ("price_change_percentage_24h_in_currency", "number"),
                ("price_change_percentage_7d_in_currency", "number"),
                ("sparkline_in_7d", "string"),
            )
        ),
    )
    key_fields = ("id",)
    cursor_field = "last_updated"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        pages: int | None = None,
        per_page: int | None = None,
        client: HttpClient | None = None,
    ) -> None:
        self.base_url = (base_url or settings.COINGECKO_BASE_URL).rstrip("/")
        api_key = settings.COINGECKO_API_KEY if api_key is None else api_key
        self.pages = max(1, pages or settings.COINGECKO_PAGES)
        self.per_page = max(1, min(250, per_page or settings.COINGECKO_PER_PAGE))
        headers = {"Accept": "application/json"}
        if api_key:
            header = "x-cg-pro-api-key" if "pro-api" in self.base_url else "x-cg-demo-api-key"
            headers[header] = api_key
        self.client = client or HttpClient(
            source=self.name,
            rate_limit_per_minute=settings.COINGECKO_RATE_LIMIT,
            headers=headers,
            auth_hint="check COINGECKO_API_KEY (and COINGECKO_BASE_URL for a pro key)",
        )

    def fetch(self, cursor: dict) -> Iterator[Page]:
        start = int(cursor.get("next_page", 1) or 1)
        if start > self.pages:
            start = 1
        for page in range(start, self.pages + 1):
            data = self.client.get_json(
                f"{self.base_url}/coins/markets",
                params={
                    "vs_currency": "usd",
                    "order": "market_cap_desc",
                    "per_page": self.per_page,
                    "page": page,
                    "sparkline": "false",
                },
            )
            if not isinstance(data, list):
                raise UpstreamError(
                    f"/coins/markets page {page}: expected a JSON list, got {type(data).__name__}"
                    f": {str(data)[:200]}"
                )
            # Fewer coins than asked for: the market ends here, later pages would be empty.
            last = page >= self.pages or len(data) < self.per_page
            yield Page(
                ref=f"page {page}", items=data, cursor={"next_page": 1 if last else page + 1}
            )
            if last:
                return

    def normalize(self, item: Any) -> MarketItem:
        if not isinstance(item, dict):
            raise ItemError("malformed", f"expected an object, got {type(item).__name__}")
        coin_id = item.get("id")
        if not isinstance(coin_id, str) or not coin_id.strip():
            raise ItemError("missing_field", "missing or empty 'id'")
        try:
            symbol = clean_text(item.get("symbol"), max_length=50).upper()
            name = clean_text(item.get("name"), max_length=200)
            observed_at = parse_timestamp(item.get("last_updated"))
            price = parse_decimal(item.get("current_price"))
            market_cap = parse_decimal(item.get("market_cap"))
            volume = parse_decimal(item.get("total_volume"))
            change = parse_decimal(item.get("price_change_percentage_24h"))
            rank = parse_int(item.get("market_cap_rank"))
        except ValueError as exc:
            raise ItemError("invalid_value", str(exc)) from None
        if not symbol or not name:
            raise ItemError("missing_field", "missing 'symbol' or 'name'")
        if observed_at is None:
            raise ItemError("missing_field", "missing 'last_updated': the quote has no time")
        if price is None:
            raise ItemError("missing_field", "missing 'current_price'")
        return MarketItem(
            source_key=coin_id.strip(),
            coingecko_id=coin_id.strip(),
            symbol=symbol,
            name=name,
            observed_at=observed_at,
            price_usd=price,
            market_cap=market_cap,
            volume_24h=volume,
            price_change_24h=change,
            market_cap_rank=rank,
        )

    @classmethod
    def describe_cursor(cls, cursor: dict) -> str:
        return f"next page {cursor.get('next_page', 1)}"
