"""The venues of a run, built from the config: the mock market's in process, or real ones (paper,
live) through ccxt, which only those modes import."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from arbitrage.clock import Clock
from arbitrage.config import AppConfig
from arbitrage.domain.book import BookListener
from arbitrage.venues.base import AlertFn, Venue, Venues

if TYPE_CHECKING:
    from arbitrage.venues.mock_market import MockMarket

log = logging.getLogger("arbitrage.venues")


def build_mock_venues(config: AppConfig, clock: Clock, listeners: Sequence[BookListener] = ()) -> Venues:
    """The mock market's venues. It steps before each tick, or with mock.updates_per_s on a feed
    thread of its own that tells `listeners` of every book."""
    from arbitrage.venues.mock import MockVenue
    from arbitrage.venues.mock_faults import MockFaults
    from arbitrage.venues.mock_feed import MockMarketFeed
    from arbitrage.venues.mock_market import MockMarket

    market = MockMarket(config, clock)
    faults = MockFaults(config.mock.faults, config.mock.seed)
    venues: dict[str, Venue] = {
        name: MockVenue(name, vc, market, faults, clock) for name, vc in config.venues.items()
    }
    rate = config.mock.updates_per_s
    if rate > 0:
        feed = MockMarketFeed(market, rate, config.loop.book_depth, listeners, clock)
        feed.start()
        return Venues(venues, signals_books=True, stop_feeds=[feed.stop])
    step: list[Callable[[], None]] = [market.step]
    if listeners:
        step.append(MockBookFeed(market, config, listeners).publish)
    return Venues(venues, before_tick=step)


class MockBookFeed:
    """After each step of the mock market, every one of its books (the FX markets' too) to the
    listeners, as a stream would deliver them: the recorder sees a mock run like a real one."""

    def __init__(self, market: MockMarket, config: AppConfig, listeners: Sequence[BookListener]) -> None:
        self._market = market
        self._depth = config.loop.book_depth
        self._markets = [(venue, symbol) for venue in config.venues for symbol in market.symbols(venue)]
        self.listeners = tuple(listeners)  # the benchmark switches the recorder in and out
        self._failed: set[int] = set()

    def publish(self) -> None:
        market, depth = self._market, self._depth
        for venue, symbol in self._markets:
            # The very book the tick reads next (the market caches it per depth): built once.
            book = market.book(venue, symbol, depth)
            for index, listener in enumerate(self.listeners):
                try:
                    listener(book)
                except Exception:  # a listener must never break the tick
                    if index not in self._failed:
                        self._failed.add(index)
                        log.exception("book listener %r failed (logged once)", listener)


def build_venues(
    config: AppConfig,
    clock: Clock,
    env: Mapping[str, str],
    alert: AlertFn | None = None,
    listeners: Sequence[BookListener] = (),
    recorders: Sequence[BookListener] = (),
) -> Venues:
    """The run's venues; `listeners` are told of every book their feeds deliver (streams, the
    mock market's feed), `recorders` of those and also of every book read over REST while a
    stream is down or off (the loop's book trigger must not be: its own reads would wake it)."""
    if config.mode.current == "mock":
        return build_mock_venues(config, clock, [*listeners, *recorders])
    from arbitrage.venues import ccxt_import

    ccxt_import.install()  # before the first `import ccxt`: only the configured exchanges load
    from arbitrage.venues.real import build_real_venues  # imports ccxt: paper and live only

    return build_real_venues(config, clock, env, alert, listeners, recorders)
