"""A simulated venue on the mock market: IOC limit orders fill against its books, with fees and balances.

Refusals are REJECTED reports, never exceptions, as a real venue's answer would be. Fills take
liquidity off the market for the rest of the tick, so a second order sees a thinner book.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from decimal import ROUND_DOWN, Decimal

from arbitrage.clock import Clock
from arbitrage.config import VenueConfig
from arbitrage.domain.book import OrderBook
from arbitrage.domain.money import ZERO, MarketRules, dec
from arbitrage.domain.orders import OrderReport, OrderRequest, OrderState
from arbitrage.domain.rates import RateWindow
from arbitrage.errors import PermanentVenueError
from arbitrage.venues.fills import (
    DUPLICATE_ID,
    INSUFFICIENT_BALANCE,
    IOC_REMAINDER,
    NO_LIQUIDITY,
    QTY_UNIT,
    affordable,
    coin_fee,
    settle,
    take,
    taker_fee,
)
from arbitrage.venues.mock_faults import MockFaults
from arbitrage.venues.mock_market import MockMarket
from arbitrage.venues.simulated_rules import foreign_rules, krw_rules

REMEMBERED_ORDERS = 1024  # per venue, as MockFaults remembers 1024 entry groups
REJECTED_BY_FAULT = "mock fault: rejected"
LEG_FAILED = "mock fault: leg failed"
PARTIAL_BY_FAULT = "mock fault: partial fill"


class MockVenue:
    """One venue of the mock market, behind the common Venue interface."""

    def __init__(
        self, name: str, config: VenueConfig, market: MockMarket, faults: MockFaults, clock: Clock
    ) -> None:
        self.name = name
        self.quote = config.quote
        self.taker_fee_pct = config.taker_fee_pct
        self._fee_rate = dec(config.taker_fee_pct) / 100
        # A Binance-like venue takes a buy's fee from the coin bought (venues.<name>.buy_fee_in).
        self._coin_fee_rate = self._fee_rate if config.buy_fee_in_base else Decimal(0)
        self._depth = config.mock.depth_levels
        self._market = market
        self._faults = faults
        self._clock = clock
        self._balances: dict[str, Decimal] = {asset: dec(v) for asset, v in config.balances.items()}
        # The latest orders by client id, for lookups and duplicate refusal: a lookup follows its
        # order within seconds, while keeping every order would grow without bound in a long run.
        self._orders: OrderedDict[str, OrderReport] = OrderedDict()
        self._order_seq = 0
        self._fixed_rules: dict[str, MarketRules] = {}
        # A fault with rate 0 never fires nor draws (MockFaults), so the book path may skip asking.
        self._may_delay = faults.config.latency_rate > 0.0
        self._may_go_stale = faults.config.stale_book_rate > 0.0
        # The id check, the fill and the balance update are one step even if legs are sent from threads.
        self._orders_lock = threading.Lock()
        # Orders of the last minute in one-second buckets: a run of thousands of orders a second
        # (the benchmark) must not keep a timestamp for each.
        self._sent = RateWindow(60.0)

    # Market data -----------------------------------------------------------------------------

    def order_book(self, symbol: str, depth: int, deadline: float | None = None) -> OrderBook:
        # In process: nothing to give up early, and a simulated delay is the test's to measure.
        if self._may_delay:
            self._delay()
        book = self._market.book(self.name, symbol, depth)
        if self._may_go_stale:
            age = self._faults.stale_age_s()
            if age > 0.0:
                book = replace(book, exchange_ts=book.received_ts - age)
        return book

    def balances(self) -> dict[str, Decimal]:
        self._delay()
        return dict(self._balances)

    def rules(self, symbol: str) -> MarketRules:
        if not self._market.has_market(self.name, symbol):
            raise PermanentVenueError(self.name, f"unknown market {symbol!r}")
        if self.quote == "KRW":
            return krw_rules(self._market.mid(self.name, symbol), self._coin_fee_rate)
        rules = self._fixed_rules.get(symbol)
        if rules is None:
            rules = foreign_rules(self._market.opening_mid(self.name, symbol), self._coin_fee_rate)
            self._fixed_rules[symbol] = rules
        return rules

    # Orders ----------------------------------------------------------------------------------

    def submit(self, request: OrderRequest) -> OrderReport:
        self._delay()
        cid = request.client_order_id
        with self._orders_lock:
            if cid in self._orders:
                # Like Binance: the second request is refused and the first order is left alone.
                return OrderReport(cid, OrderState.REJECTED, reason=DUPLICATE_ID)
            report = self._execute(request)
            self._sent.add(self._clock.monotonic())
            self._orders[cid] = report
            if len(self._orders) > REMEMBERED_ORDERS:
                self._orders.popitem(last=False)
            return report

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport | None:
        self._delay()
        return self._orders.get(client_order_id)

    def cancel(self, symbol: str, client_order_id: str) -> OrderReport | None:
        # Every IOC order is terminal once submit() returns: a cancel changes nothing.
        self._delay()
        return self._orders.get(client_order_id)

    @property
    def degraded(self) -> bool:
        return False  # the simulated venue has no circuit breaker; its faults are per order

    @property
    def orders_last_minute(self) -> int:
        return self._sent.count(self._clock.monotonic())

    def ws_lag_ms(self) -> float | None:
        return None  # the simulated market has no stream

    def describe(self) -> dict[str, object]:
        return {"exchange": "mock", "feed": "simulated", "quote": self.quote, "orders": self._order_seq}

    def close(self) -> None:
        """Nothing to release: the venue holds no connection or thread."""

    # Internals -------------------------------------------------------------------------------

    def _delay(self) -> None:
        seconds = self._faults.delay_s()
        if seconds > 0.0:
            self._clock.sleep(seconds)

    def _execute(self, req: OrderRequest) -> OrderReport:
        self._order_seq += 1
        cid, vid = req.client_order_id, f"{self.name}-{self._order_seq}"
        problem = self._invalid(req)
        if problem is None and self._faults.rejects(req):
            problem = REJECTED_BY_FAULT
        if problem is None and not affordable(
            self._balances, req.symbol, req.side, req.qty, req.price, self._fee_rate
        ):
            problem = INSUFFICIENT_BALANCE
        if problem is not None:
            return OrderReport(cid, OrderState.REJECTED, venue_order_id=vid, reason=problem)
        if self._faults.leg_fails(req):
            return OrderReport(cid, OrderState.EXPIRED, venue_order_id=vid, reason=LEG_FAILED)

        levels = self._market.book(self.name, req.symbol, self._depth).side(req.side)
        qty, notional = take(levels, req.qty, req.price, req.side)
        fraction = self._faults.partial_fraction(req)
        if fraction is not None:
            share = (qty * dec(fraction)).quantize(QTY_UNIT, ROUND_DOWN)
            qty, notional = take(levels, share, req.price, req.side)
        if qty <= 0:
            empty = PARTIAL_BY_FAULT if fraction is not None else NO_LIQUIDITY
            return OrderReport(cid, OrderState.EXPIRED, venue_order_id=vid, reason=empty)

        # The notional stays exact (1e-8 prices times 1e-8 sizes), so a one-level fill reports
        # exactly the level's price; only the fee is rounded.
        fee = taker_fee(notional, self._fee_rate)  # reported at its quote value wherever it is paid
        if self._coin_fee_rate and req.side == "buy":
            fee_base = coin_fee(qty, self._coin_fee_rate)
            settle(self._balances, req.symbol, req.side, qty, notional, ZERO, fee_base)
        else:
            fee_base = ZERO
            settle(self._balances, req.symbol, req.side, qty, notional, fee)
        self._market.consume(self.name, req.symbol, req.side, float(qty))
        reason: str | None = None
        if qty == req.qty:
            state = OrderState.FILLED
        else:
            state = OrderState.EXPIRED
            reason = PARTIAL_BY_FAULT if fraction is not None else IOC_REMAINDER
        return OrderReport(cid, state, qty, notional / qty, fee, vid, reason, fee_base)

    def _invalid(self, req: OrderRequest) -> str | None:
        if req.side not in ("buy", "sell"):
            return f"invalid side {req.side!r}"
        if req.qty <= 0:
            return f"quantity {req.qty} is not positive"
        if req.price <= 0:
            return f"price {req.price} is not positive"
        if not self._market.has_market(self.name, req.symbol):
            return f"unknown market {req.symbol!r}"
        return None
