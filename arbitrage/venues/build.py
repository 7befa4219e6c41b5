"""The venues of a run, built from the config: the mock market's in process, or real ones (paper,
live) through ccxt, which only those modes import."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from arbitrage.clock import Clock
from arbitrage.config import AppConfig
from arbitrage.domain.book import BookListener
from arbitrage.venues.base import AlertFn, Venue, Venues


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
    if rate <= 0:
        return Venues(venues, before_tick=[market.step])
    feed = MockMarketFeed(market, rate, config.loop.book_depth, listeners, clock)
    feed.start()
    return Venues(venues, signals_books=True, stop_feeds=[feed.stop])


def build_venues(
    config: AppConfig,
    clock: Clock,
    env: Mapping[str, str],
    alert: AlertFn | None = None,
    listeners: Sequence[BookListener] = (),
) -> Venues:
    """The run's venues; `listeners` are told of every book their feeds deliver (streams, the
    mock market's feed)."""
    if config.mode.current == "mock":
        return build_mock_venues(config, clock, listeners)
    from arbitrage.venues.real import build_real_venues  # imports ccxt: paper and live only

    return build_real_venues(config, clock, env, alert, listeners)
