"""A venue on a recorded market (`arb replay`): books as recorded at the replay clock's time, IOC
limit orders filled by walking the book recorded `replay.fill_latency_ms` after the decision, with
the venue's taker fee and balances from the config, as paper trading fills on live books.

What it does not model: queue position (an IOC takes what the book shows), latency variance (one
fixed latency), market impact beyond the replayed tick (taken liquidity comes back with the next
recorded book), and orders of unknown outcome (every order gets an answer).
"""

from __future__ import annotations

from decimal import Decimal

from arbitrage.clock import Clock
from arbitrage.config import AppConfig, VenueConfig
from arbitrage.domain.book import OrderBook
from arbitrage.domain.money import MarketRules, dec
from arbitrage.domain.orders import OrderReport, OrderRequest, OrderState
from arbitrage.domain.rates import RateWindow
from arbitrage.recording.tape import Tape
from arbitrage.venues.base import Venue, Venues
from arbitrage.venues.fills import (
    INSUFFICIENT_BALANCE,
    NO_LIQUIDITY,
    SimulatedAccount,
    SimulatedOrders,
    TakenLiquidity,
    affordable,
    fill_ioc,
    malformed,
    settle,
)
from arbitrage.venues.replay_market import ReplayMarket
from arbitrage.venues.simulated_rules import foreign_rules, krw_rules

FILL_DEPTH = 50  # levels a fill may walk: every level a recording keeps, in practice


class ReplayVenue(SimulatedOrders):
    """One venue of a recording, behind the common Venue interface."""

    def __init__(self, name: str, config: VenueConfig, market: ReplayMarket, clock: Clock,
                 fill_latency_s: float) -> None:
        self.name = name
        self.quote = config.quote
        self.taker_fee_pct = config.taker_fee_pct
        self._fee_rate = dec(config.taker_fee_pct) / 100
        self._coin_fee_rate = self._fee_rate if config.buy_fee_in_base else Decimal(0)
        self._market = market
        self._clock = clock
        self._latency_s = fill_latency_s
        self._account = SimulatedAccount(config.balances)
        self._balances = self._account.balances
        self._taken = TakenLiquidity()
        self._fixed_rules: dict[str, MarketRules] = {}
        self._sent = RateWindow(60.0)
        self._seq = 0

    # Market data -------------------------------------------------------------------------------

    def order_book(self, symbol: str, depth: int, deadline: float | None = None) -> OrderBook:
        return self._market.book(self.name, symbol, depth)

    def rules(self, symbol: str) -> MarketRules:
        if self.quote == "KRW":
            return krw_rules(self._market.mid(self.name, symbol), self._coin_fee_rate)
        rules = self._fixed_rules.get(symbol)
        if rules is None:
            rules = foreign_rules(self._market.first_mid(self.name, symbol), self._coin_fee_rate)
            self._fixed_rules[symbol] = rules
        return rules

    @property
    def degraded(self) -> bool:
        return False  # a recording has no breaker to open: a gap in it shows as stale books

    @property
    def orders_last_minute(self) -> int:
        return self._sent.count(self._clock.monotonic())

    def ws_lag_ms(self) -> float | None:
        return None

    def describe(self) -> dict[str, object]:
        return {"exchange": "replay", "feed": "recorded", "quote": self.quote, "orders": self._seq}

    def close(self) -> None:
        """Nothing to release here: the replay that read the recording closes it (its venues share it)."""

    # Simulated account: balances, submit, fetch_order and cancel come from SimulatedOrders.

    def _execute(self, req: OrderRequest) -> OrderReport:
        self._seq += 1
        self._sent.add(self._clock.monotonic())
        cid, vid = req.client_order_id, f"replay-{self.name}-{self._seq}"
        problem = malformed(req)
        if problem is None and not self._market.has_market(self.name, req.symbol):
            problem = f"unknown market {req.symbol!r}"
        if problem is None and not affordable(
            self._balances, req.symbol, req.side, req.qty, req.price, self._fee_rate
        ):
            problem = INSUFFICIENT_BALANCE
        if problem is not None:
            return OrderReport(cid, OrderState.REJECTED, venue_order_id=vid, reason=problem)
        # The order reaches the book the venue shows a latency after the decision.
        book = self._market.book_at(self.name, req.symbol, self._clock.time() + self._latency_s, FILL_DEPTH)
        if book is None:
            return OrderReport(cid, OrderState.EXPIRED, venue_order_id=vid, reason=NO_LIQUIDITY)
        shown = book.side(req.side)
        levels = self._taken.untaken(req.symbol, req.side, shown)
        fill = fill_ioc(levels, req.side, req.qty, req.price, self._fee_rate, self._coin_fee_rate > 0)
        if fill.qty > 0:
            settle(
                self._balances, req.symbol, req.side, fill.qty, fill.notional, fill.quote_fee, fill.fee_base
            )
            self._taken.take(req.symbol, req.side, shown, levels, fill.qty)
        return fill.report(cid, vid, req.qty)


def build_replay_venues(config: AppConfig, clock: Clock, tape: Tape, fill_latency_ms: float) -> Venues:
    """The config's venues on the recording's markets; the market steps to the clock before each tick."""
    market = ReplayMarket(tape, clock, config.loop.book_depth)
    latency_s = fill_latency_ms / 1000.0
    venues: dict[str, Venue] = {
        name: ReplayVenue(name, vc, market, clock, latency_s) for name, vc in config.venues.items()
    }
    return Venues(venues, before_tick=[market.step])
