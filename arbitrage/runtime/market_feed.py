"""Builds each tick's MarketSnapshot: every asset's book on every venue, and the FX rates.

Venues decide where a book comes from (a stream, REST, the mock market); the feed asks, under the
tick's read deadline (arbitrage.runtime.tick_reads), and tolerates. A book that did not come this
tick (too late, the venue's breaker open, or a failure) is replaced by the last one that did, with
its real age, and named in the snapshot's `carried`: positions are still valued on it, but safety
rejects entries on it (VENUE_DEGRADED or STALE_DATA) and no exit is sent on it. Only a real
failure is a live error (the watchdog watches those): a read too late for the deadline, refused
by an open breaker or a failed probe is the budget or the breaker at work, not a new fault.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from arbitrage.clock import Clock
from arbitrage.domain.book import MarketSnapshot, OrderBook
from arbitrage.engines.base import VenueStatus
from arbitrage.errors import ReadTooLate, VenueError, VenueUnavailable
from arbitrage.runtime.book_events import BookKey
from arbitrage.runtime.tick_reads import BookRead, Key, TickReader
from arbitrage.venues.base import Venue

log = logging.getLogger("arbitrage.live_loop")

FX_KEY: Key = ("", "fx")  # the FX market's read among the books' (no venue is named "")


class FxSource(Protocol):
    @property
    def market(self) -> tuple[str, str] | None:
        """(venue, symbol) whose book gives the rates, read with the tick's books; None if fixed."""

    def rates(self, now: float, book: OrderBook | None) -> tuple[dict[str, float], float]:
        """quote -> accounting-currency rate (accounting currency -> 1.0), and the rate's age in ms.

        `book` is this tick's book of `market`, None when it did not come.
        """


class FixedFx:
    market = None

    def __init__(self, accounting: str, rates: Mapping[str, float]) -> None:
        self._rates = {**rates, accounting: 1.0}

    def rates(self, now: float, book: OrderBook | None) -> tuple[dict[str, float], float]:
        return self._rates, 0.0


class VenueFx:
    """The rate from a venue's market, e.g. Upbit's USDT/KRW mid; stale when the book is."""

    def __init__(self, accounting: str, venue: str, symbol: str) -> None:
        self._accounting = accounting
        self.market = (venue, symbol)
        self._quote = symbol.partition("/")[0]
        self._last: tuple[dict[str, float], float] | None = None  # rates, exchange ts

    def rates(self, now: float, book: OrderBook | None) -> tuple[dict[str, float], float]:
        if book is not None and book.best_bid is not None and book.best_ask is not None:
            mid = (book.best_bid + book.best_ask) / 2
            self._last = ({self._quote: mid, self._accounting: 1.0}, book.exchange_ts)
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
        reader: TickReader | None = None,
    ) -> None:
        self._venues = venues
        self._symbols = symbols
        self._depth = depth
        self._fx = fx
        self._clock = clock
        self._before_tick = before_tick
        # No reader: every read in turn on this thread, with no deadline (mock venues).
        self._reader = reader or TickReader(venues, clock, None, concurrent=False)
        self._reads = [BookRead(key, key[0], symbol, depth) for key, symbol in symbols.items()]
        if fx.market is not None:
            self._reads.append(BookRead(FX_KEY, fx.market[0], fx.market[1], 1))
        # A streamed update names (venue, market symbol); the snapshot's books are (venue, asset).
        self._read_of: dict[BookKey, BookRead] = {(r.venue, r.symbol): r for r in self._reads}
        self._all_keys: frozenset[Key] = frozenset(symbols)
        self._last: dict[Key, OrderBook] = {}  # the last book that came, per key
        self._late_ticks: dict[str, int] = {}  # venue -> consecutive ticks with a book too late
        self.errors_last_tick = 0
        self.late_last_tick = 0
        self.last_fx: dict[str, float] = {}

    def close(self) -> None:
        self._reader.close()

    def snapshot(self, changed: frozenset[BookKey] | None = None) -> MarketSnapshot:
        """Every book of the tick. With `changed` (the books streamed updates changed since the
        last tick), only those are read, in turn on this thread (a streamed book is in memory: a
        worker's hand-off would cost more than the read), and the others are the last ones that
        came; a changed FX rate counts every asset as changed. None reads everything."""
        for hook in self._before_tick:
            hook()
        reads, moved = self._reads_for(changed)
        got = self._reader.read(reads, self._clock.monotonic(), in_turn=moved is not None)
        books = got.books
        if moved is not None:
            last = self._last
            books = {**{k: b for k, b in last.items() if k not in got.errors}, **books}
        errors = 0
        self.late_last_tick = 0
        carried: frozenset[Key] = frozenset()
        if got.errors:
            errors = self._account(got.errors)
            last = self._last
            kept = [key for key in got.errors if key in last and key != FX_KEY]
            for key in kept:
                books[key] = last[key]  # with its real age
            carried = frozenset(kept)
        elif self._late_ticks:
            self._account({})
        fx_book = books.pop(FX_KEY, None)
        self._last.update(books)
        now = self._clock.time()
        fx, fx_age_ms = self._fx.rates(now, fx_book)  # a rate that did not come ages in VenueFx
        self.errors_last_tick = errors
        self.last_fx = fx
        return MarketSnapshot(ts=now, books=books, fx=fx, fx_age_ms=fx_age_ms, carried=carried, changed=moved)

    def _reads_for(self, changed: frozenset[BookKey] | None) -> tuple[list[BookRead], frozenset[Key] | None]:
        """The reads a tick makes and the (venue, asset) keys it counts as changed (None: all)."""
        if changed is None:
            return self._reads, None
        read_of = self._read_of
        reads = [read_of[key] for key in changed if key in read_of]
        last = self._last
        # A book never read yet (the stream's first books came before any full pass) is read too;
        # the FX rate that did not change is VenueFx's last.
        reads += [r for r in self._reads if r.key not in last and r.key != FX_KEY and r not in reads]
        if any(read.key == FX_KEY for read in reads):
            return reads, self._all_keys  # every cross-venue spread moved with the rate
        return reads, frozenset(read.key for read in reads)

    def _account(self, failed: Mapping[Key, VenueError]) -> int:
        """Log this tick's missing books; the number that count as live errors."""
        errors = 0
        late: dict[str, list[str]] = {}
        for key, err in failed.items():
            venue = key[0] or (self._fx.market or ("", ""))[0]
            symbol = self._symbols.get(key) or (self._fx.market or ("", "fx"))[1]
            if isinstance(err, ReadTooLate):
                late.setdefault(venue, []).append(symbol)
            elif isinstance(err, VenueUnavailable):
                log.debug("book %s %s skipped: %s", venue, symbol, err)
            else:
                errors += 1
                log.warning("book %s %s unavailable: %s", venue, symbol, err)
        self.late_last_tick = sum(len(symbols) for symbols in late.values())
        budget = self._reader.budget_s
        for venue, symbols in late.items():
            streak = self._late_ticks.get(venue, 0) + 1
            self._late_ticks[venue] = streak
            if streak == 1:
                log.warning(
                    "%s: %s not read within the tick's read budget (%.0f ms); stale this tick",
                    venue,
                    ", ".join(symbols),
                    (budget or 0.0) * 1000.0,
                )
        for venue in [v for v in self._late_ticks if v not in late]:
            log.info("%s: books on time again after %d late tick(s)", venue, self._late_ticks.pop(venue))
        return errors

    def fx_now(self) -> dict[str, float]:
        """The FX rates now, without taking a snapshot (the mock market does not move)."""
        book = None
        market = self._fx.market
        if market is not None:
            try:
                book = self._venues[market[0]].order_book(market[1], 1)
            except VenueError as err:
                log.warning("FX rate from %s %s unavailable: %s", market[0], market[1], err)
        rates, _age = self._fx.rates(self._clock.time(), book)
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
