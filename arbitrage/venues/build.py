"""The venues of a run, built from the config: the mock market's in process, or real ones (paper,
live) through ccxt, which only those modes import."""

from __future__ import annotations

from collections.abc import Mapping

from arbitrage.clock import Clock
from arbitrage.config import AppConfig
from arbitrage.venues.base import AlertFn, Venue, Venues


def build_mock_venues(config: AppConfig, clock: Clock) -> Venues:
    from arbitrage.venues.mock import MockVenue
    from arbitrage.venues.mock_faults import MockFaults
    from arbitrage.venues.mock_market import MockMarket

    market = MockMarket(config, clock)
    faults = MockFaults(config.mock.faults, config.mock.seed)
    venues: dict[str, Venue] = {
        name: MockVenue(name, vc, market, faults, clock) for name, vc in config.venues.items()
    }
    return Venues(venues, before_tick=[market.step])


def build_venues(
    config: AppConfig, clock: Clock, env: Mapping[str, str], alert: AlertFn | None = None
) -> Venues:
    if config.mode.current == "mock":
        return build_mock_venues(config, clock)
    from arbitrage.venues.real import build_real_venues  # imports ccxt: paper and live only

    return build_real_venues(config, clock, env, alert)
