"""A cross-venue opportunity: buy on the cheap venue at its ask, sell on the rich one at its bid."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Opportunity:
    asset: str  # base asset, e.g. "BTC"
    buy_venue: str
    sell_venue: str
    buy_symbol: str  # e.g. "BTC/USDT"
    sell_symbol: str  # e.g. "BTC/KRW"
    qty: float  # executable size found by walking both books
    buy_price: float  # worst ask taken on the buy venue, venue quote currency
    sell_price: float  # worst bid taken on the sell venue, venue quote currency
    buy_vwap: float  # venue quote currency
    sell_vwap: float
    buy_fx: float  # quote -> accounting currency
    sell_fx: float
    gross_spread_pct: float  # top of book, FX-normalised
    net_spread_pct: float  # after both taker fees and the slippage of walking the books
    slippage_pct: float
    fees_pct: float
    ts: float
    book_age_ms: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.asset}:{self.buy_venue}>{self.sell_venue}"

    @property
    def notional(self) -> float:
        """Buy-side notional in the accounting currency."""
        return self.qty * self.buy_vwap * self.buy_fx
