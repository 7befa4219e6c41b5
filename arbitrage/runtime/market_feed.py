"""Builds each tick's MarketSnapshot: every asset's book on every venue, and the FX rates.

Venues decide where a book comes from (a stream, REST, the mock market); the feed only asks,
times and tolerates: a venue that fails leaves its books out of the snapshot for this tick and
is counted as a live error, which the watchdog watches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from arbitrage.clock import Clock
from arbitrage.domain.book import MarketSnapshot, OrderBook
from arbitrage.engines.base import VenueStatus
from arbitrage.errors import VenueError
from arbitrage.venues.base import Venue

log = logging.getLogger("arbitrage.live_loop")


class FxSource(Protocol):
    def rates(self, now: float) -> tuple[dict[str, float], float]:
        """quote -> accounting-currency rate (accounting currency -> 1.0), and the rate's age in ms."""


class FixedFx:
    def __init__(self, accounting: str, rates: Mapping[str, float]) -> None:
        self._rates = {**rates, accounting: 1.0}

    def rates(self, now: float) -> tuple[dict[str, float], float]:
        return self._rates, 0.0


class VenueFx:
    """The rate from a venue's market, e.g. Upbit's USDT/KRW mid; stale when the book is."""

    def __init__(self, accounting: str, venue: Venue, symbol: str) -> None:
        self._accounting = accounting
        self._venue = venue
        self._symbol = symbol
        self._quote = symbol.partition("/")[0]
        self._last: tuple[dict[str, float], float] | None = None  # rates, exchange ts

    def rates(self, now: float) -> tuple[dict[str, float], float]:
        try:
            book = self._venue.order_book(self._symbol, 1)
            if book.best_bid is not None and book.best_ask is not None:
                mid = (book.best_bid + book.best_ask) / 2
                self._last = ({self._quote: mid, self._accounting: 1.0}, book.exchange_ts)
        except VenueError as err:
            log.warning("FX rate from %s %s unavailable: %s", self._venue.name, self._symbol, err)
        if self._last is None:
            return {self._accounting: 1.0}, float("inf")
        rates, ts = self._last
        return rates, max(0.0, (now - ts) * 1000.0)


class MarketFeed:
    def __init__(
        self,
        venues: Mapping[str, Venue],
        symbols: Mapping[tuple[str, str], str],  # (venue, asset) -> market symbol
        depth: int,
        fx: FxSource,
        clock: Clock,
        before_tick: Sequence[Callable[[], None]] = (),
    ) -> None:
        self._venues = venues
        self._symbols = symbols
        self._depth = depth
        self._fx = fx
        self._clock = clock
        self._before_tick = before_tick
        self.errors_last_tick = 0
        self.last_fx: dict[str, float] = {}

    def snapshot(self) -> MarketSnapshot:
        for hook in self._before_tick:
            hook()
        books: dict[tuple[str, str], OrderBook] = {}
        errors = 0
        venues, depth = self._venues, self._depth
        for key, symbol in self._symbols.items():  # key: (venue, asset)
            try:
                books[key] = venues[key[0]].order_book(symbol, depth)
            except VenueError as err:
                errors += 1
                log.warning("book %s %s unavailable: %s", key[0], symbol, err)
        now = self._clock.time()
        fx, fx_age_ms = self._fx.rates(now)
        self.errors_last_tick = errors
        self.last_fx = fx
        return MarketSnapshot(ts=now, books=books, fx=fx, fx_age_ms=fx_age_ms)

    def fx_now(self) -> dict[str, float]:
        """The FX rates now, without taking a snapshot (the mock market does not move)."""
        rates, _age = self._fx.rates(self._clock.time())
        return rates

    def mid(self, venue: str, asset: str) -> float | None:
        book = self.book(venue, asset)
        if book is None or book.best_bid is None or book.best_ask is None:
            return None
        return (book.best_bid + book.best_ask) / 2

    def venue_statuses(self) -> dict[str, VenueStatus]:
        """What the engines may know of each venue this tick: breaker, stream lag, order rate."""
        return {
            name: VenueStatus(
                name=name,
                quote=venue.quote,
                taker_fee_pct=venue.taker_fee_pct,
                degraded=venue.degraded,
                ws_lag_ms=venue.ws_lag_ms() or 0.0,
                orders_last_minute=venue.orders_last_minute,
            )
            for name, venue in self._venues.items()
        }

    def ws_lag(self) -> dict[str, float]:
        """Per-venue stream lag in ms, from venues that stream (mock and REST venues have none)."""
        lags: dict[str, float] = {}
        for name, venue in self._venues.items():
            lag = venue.ws_lag_ms()
            if lag is not None:
                lags[name] = lag
        return lags

    def book(self, venue: str, asset: str) -> OrderBook | None:
        """A fresh book for one market, for decisions made mid-tick (retries and unwinds)."""
        symbol = self._symbols.get((venue, asset))
        if symbol is None:
            return None
        try:
            return self._venues[venue].order_book(symbol, self._depth)
        except VenueError as err:
            log.warning("book %s %s unavailable: %s", venue, symbol, err)
            return None
