"""The one interface every venue hides behind: mock, paper and ccxt alike.

Engines never see a venue; the runtime calls these methods. Errors come out as the bot's own
exception tree (arbitrage.errors), never as a library's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from arbitrage.domain.book import OrderBook
from arbitrage.domain.money import MarketRules
from arbitrage.domain.orders import OrderReport, OrderRequest

# Closing the venues is part of a run's stop, told in the loop's log with the rest of it.
run_log = logging.getLogger("arbitrage.live_loop")


class AlertFn(Protocol):
    """Sends an operator alert (arbitrage.ops.alerts), keyed for its cooldown."""

    def __call__(self, key: str, text: str, level: str = "ERROR") -> None: ...


class Venue(Protocol):
    name: str
    quote: str
    taker_fee_pct: float

    def order_book(self, symbol: str, depth: int, deadline: float | None = None) -> OrderBook:
        """The latest book for a market symbol such as "BTC/KRW".

        `deadline` (monotonic seconds) is the tick's: a venue that must ask over the network
        gives up by then (ReadTooLate) rather than stretch the tick.
        """

    def balances(self) -> dict[str, Decimal]:
        """Free balance per asset."""

    def rules(self, symbol: str) -> MarketRules:
        """Tick, step and minimums for a market."""

    def submit(self, request: OrderRequest) -> OrderReport:
        """Place an IOC limit order under its client order id and report what became of it.

        Raises UnknownOrderOutcome when the venue may or may not have taken it (timeout, 5xx):
        the caller looks it up with fetch_order and never resends.
        """

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport | None:
        """What the venue knows of an order, by client order id; None if it never saw it."""

    def cancel(self, symbol: str, client_order_id: str) -> OrderReport | None:
        """Cancel an order by client order id; the report after the cancel, None if unknown."""

    @property
    def degraded(self) -> bool:
        """True while the venue's circuit breaker is open (or a Retry-After pause runs)."""

    @property
    def orders_last_minute(self) -> int:
        """Orders sent in the last 60 s, for the ORDER_RATE check."""

    def ws_lag_ms(self) -> float | None:
        """Lag of the venue's market-data stream in ms; None when it has no stream."""

    def describe(self) -> dict[str, object]:
        """What /health/detailed shows of this venue: its feed (stream/poll/simulated) and health."""

    def close(self) -> None: ...


@dataclass
class Venues:
    """The venues of a run, plus whatever must advance before each tick (the mock market)."""

    by_name: dict[str, Venue]
    before_tick: list[Callable[[], None]] = field(default_factory=list)
    concurrent_legs: bool = False  # real venues: both legs at once; simulated: in order, deterministic
    # Real venues: a tick's reads share its deadline, each venue on a worker of its own. Simulated
    # ones answer in process, in order, deterministic, with no deadline to keep.
    remote_reads: bool = False
    # Whether a feed tells the run's BookListeners of new books (streams, the mock market's feed):
    # without one, a book-triggered loop is in effect interval-driven.
    signals_books: bool = False
    # Feeds of their own to stop before the venues close (the mock market's).
    stop_feeds: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for stop in self.stop_feeds:
            try:
                stop()
            except Exception:  # closing must not hide the reason we are closing
                run_log.exception("stopping a book feed failed")
        for venue in self.by_name.values():
            try:
                venue.close()
            except Exception:  # closing must not hide the reason we are closing
                run_log.exception("closing venue %s failed", venue.name)
