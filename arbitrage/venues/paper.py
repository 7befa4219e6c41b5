"""Paper trading: real books from a venue's market data, simulated IOC fills and balances.

An order is rounded and checked against the real venue's rules, then fills by walking the real
book it would hit, with the venue's taker fee (in the quote currency, or taken from the coin
bought where the real venue does so, like the mock venue), from the balances in the config.
Nothing is ever sent to the exchange. Within one book snapshot a fill takes its liquidity away,
so a retry does not fill twice against the same levels.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from arbitrage.clock import Clock
from arbitrage.config import VenueConfig
from arbitrage.domain.book import OrderBook
from arbitrage.domain.money import MarketRules, dec
from arbitrage.domain.orders import OrderReport, OrderRequest, OrderState
from arbitrage.errors import RateLimited, VenueError
from arbitrage.venues.fills import (
    INSUFFICIENT_BALANCE,
    SimulatedAccount,
    SimulatedOrders,
    TakenLiquidity,
    affordable,
    fill_ioc,
    malformed,
    settle,
)
from arbitrage.venues.order_rate import OrderRateLimiter

PAPER_DEPTH = 30  # levels walked per fill (Upbit's REST book has at most 30)
ORDER_RATE_WAIT_S = 0.5


class MarketData(Protocol):
    """What paper needs of the real venue: its books and rules (arbitrage.venues.ccxt_venue)."""

    exchange_id: str

    @property
    def degraded(self) -> bool: ...

    def order_book(self, symbol: str, depth: int, deadline: float | None = None) -> OrderBook: ...

    def rules(self, symbol: str) -> MarketRules: ...

    def rules_at(self, symbol: str, price: Decimal | None) -> MarketRules: ...

    def ws_lag_ms(self) -> float | None: ...

    def describe(self) -> dict[str, object]: ...

    def close(self) -> None: ...


class PaperVenue(SimulatedOrders):
    def __init__(self, name: str, config: VenueConfig, market_data: MarketData, clock: Clock) -> None:
        self.name = name
        self.quote = config.quote
        self.taker_fee_pct = config.taker_fee_pct
        self._fee_rate = dec(config.taker_fee_pct) / 100
        self._market = market_data
        self._account = SimulatedAccount(config.balances)
        self._balances = self._account.balances
        self._limiter = OrderRateLimiter(config.max_orders_per_s, clock, ORDER_RATE_WAIT_S)
        self._taken = TakenLiquidity()
        self._seq = 0

    # Market data: the real venue's -------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        return self._market.degraded

    @property
    def orders_last_minute(self) -> int:
        return self._limiter.orders_last_minute

    def order_book(self, symbol: str, depth: int, deadline: float | None = None) -> OrderBook:
        return self._market.order_book(symbol, depth, deadline)

    def rules(self, symbol: str) -> MarketRules:
        return self._market.rules(symbol)

    def ws_lag_ms(self) -> float | None:
        return self._market.ws_lag_ms()

    def describe(self) -> dict[str, object]:
        return {
            "exchange": self._market.exchange_id,
            "feed": "paper",
            "orders": self._seq,
            "orders_last_minute": self.orders_last_minute,
            "market_data": self._market.describe(),
        }

    def close(self) -> None:
        self._market.close()

    # Simulated account: balances, submit, fetch_order and cancel come from SimulatedOrders.

    def _execute(self, req: OrderRequest) -> OrderReport:
        self._seq += 1
        cid, vid = req.client_order_id, f"paper-{self.name}-{self._seq}"

        def refused(why: str) -> OrderReport:
            return OrderReport(cid, OrderState.REJECTED, venue_order_id=vid, reason=why)

        problem = malformed(req)
        if problem is not None:
            return refused(problem)
        try:
            rules = self._market.rules_at(req.symbol, req.price)
        except VenueError as err:
            return refused(str(err))
        price, qty = rules.round_price(req.price, req.side), rules.round_qty(req.qty)
        problem = rules.check(qty, price)
        if problem is not None:
            return refused(f"refused before sending: {problem}")
        if not affordable(self._balances, req.symbol, req.side, qty, price, self._fee_rate):
            return refused(INSUFFICIENT_BALANCE)
        if not self._limiter.acquire():
            raise RateLimited(self.name, "order rate above venues.max_orders_per_s; not sent")
        book = self._market.order_book(req.symbol, PAPER_DEPTH)
        shown = book.side(req.side)
        levels = self._taken.untaken(req.symbol, req.side, shown)
        # Where the real venue takes a buy's fee (the coin bought, on Binance) its rules say.
        fill = fill_ioc(levels, req.side, qty, price, self._fee_rate, rules.buy_fee_in_base > 0)
        if fill.qty > 0:
            settle(
                self._balances, req.symbol, req.side, fill.qty, fill.notional, fill.quote_fee, fill.fee_base
            )
            self._taken.take(req.symbol, req.side, shown, levels, fill.qty)
        return fill.report(cid, vid, req.qty)
