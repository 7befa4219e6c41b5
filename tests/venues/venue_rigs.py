"""Venues under test, built as the runtime builds them: mock, paper over the simulator, ccxt against it.

The simulator is a real SimServer on a free 127.0.0.1 port; ccxt is the real client. Each ccxt
rig trades under an API key of its own, so the simulator gives it an account of its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from arbitrage.clock import Clock, FakeClock, SystemClock
from arbitrage.config import AppConfig, MockConfig, VenueConfig
from arbitrage.domain.book import split_symbol
from arbitrage.sim.control import SimControl
from arbitrage.sim.urls import sim_options, sim_urls
from arbitrage.venues.base import Venue
from arbitrage.venues.ccxt_venue import CcxtVenue
from arbitrage.venues.mock import MockVenue
from arbitrage.venues.mock_faults import MockFaults
from arbitrage.venues.mock_market import MockMarket
from arbitrage.venues.paper import PaperVenue
from arbitrage.venues.real import client_config, create_exchange

SYMBOLS = {"upbit": "BTC/KRW", "binance": "BTC/USDT"}
QUOTES = {"upbit": "KRW", "binance": "USDT"}
FEES = {"upbit": 0.05, "binance": 0.1}
MARKET_IDS = {"BTC/KRW": "KRW-BTC", "BTC/USDT": "BTCUSDT", "ETH/KRW": "KRW-ETH", "ETH/USDT": "ETHUSDT"}
PAPER_BALANCES = {"upbit": {"KRW": 300_000_000.0, "BTC": 2.0}, "binance": {"USDT": 250_000.0, "BTC": 2.0}}
FAST_READS = (0.01, 0.02)


def venue_config(venue: str, base_url: str | None, **extra: Any) -> VenueConfig:
    """The config of one venue of the simulator (or of the mock market when base_url is None)."""
    if base_url is None:
        return VenueConfig(
            exchange="mock", quote=QUOTES[venue], taker_fee_pct=FEES[venue], balances=PAPER_BALANCES[venue]
        )
    settings: dict[str, Any] = {
        "exchange": venue,
        "quote": QUOTES[venue],
        "taker_fee_pct": FEES[venue],
        "api_key_env": "SIM_KEY",
        "api_secret_env": "SIM_SECRET",
        "urls": sim_urls(venue, base_url),
        "options": sim_options(venue),
        "balances": PAPER_BALANCES[venue],
        "timeout_ms": 3000,
    }
    settings.update(extra)
    return VenueConfig(**settings)


def new_api_key() -> str:
    return "key-" + uuid.uuid4().hex[:16]


def ccxt_venue(
    venue: str,
    base_url: str,
    api_key: str | None,
    clock: Clock | None = None,
    read_delays_s: tuple[float, ...] = FAST_READS,
    **extra: Any,
) -> CcxtVenue:
    """A CcxtVenue on the simulator; with api_key None, a public-data client (as paper uses)."""
    vc = venue_config(venue, base_url, **extra)
    env = {"SIM_KEY": api_key or "", "SIM_SECRET": "sim-secret"}
    config, secrets = client_config(venue, vc, env, with_keys=api_key is not None)
    exchange = create_exchange(venue, vc, config)
    return CcxtVenue(
        venue, vc, exchange, clock or SystemClock(), None, secrets=secrets, read_delays_s=read_delays_s
    )


@dataclass
class Rig:
    """One venue under test and the means to look at it from outside."""

    kind: str  # mock | paper | ccxt
    venue_name: str
    venue: Venue
    symbol: str
    sim: SimControl | None = None
    api_key: str | None = None
    mock_market: MockMarket | None = None
    closers: list[Any] = field(default_factory=list)

    @property
    def base(self) -> str:
        return split_symbol(self.symbol)[0]

    @property
    def quote(self) -> str:
        return split_symbol(self.symbol)[1]

    def hold_book(self) -> None:
        """Keep the book still for the test (the simulator's moves every tick; the mock's on step)."""
        if self.sim is not None:
            self.sim.freeze(self.venue_name, MARKET_IDS[self.symbol])

    def sim_free(self) -> dict[str, Decimal]:
        """The simulator's own free balances of this rig's account."""
        assert self.sim is not None and self.api_key is not None
        answer = self.sim.balances(venue=self.venue_name, api_key=self.api_key)
        wallet = answer[self.venue_name][self.api_key]
        return {asset: Decimal(amounts["free"]) for asset, amounts in wallet.items()}

    def close(self) -> None:
        if self.sim is not None:
            self.sim.freeze(self.venue_name, MARKET_IDS[self.symbol], frozen=False)
            self.sim.clear_faults()
        self.venue.close()


def mock_rig(venue: str) -> Rig:
    config = AppConfig(
        venues={name: venue_config(name, None) for name in ("upbit", "binance")},
        mock=MockConfig(seed=5),
    )
    clock = FakeClock()
    market = MockMarket(config, clock)
    faults = MockFaults(config.mock.faults, config.mock.seed)
    market.step()
    built = MockVenue(venue, config.venues[venue], market, faults, clock)
    return Rig("mock", venue, built, SYMBOLS[venue], mock_market=market)


def paper_rig(venue: str, base_url: str) -> Rig:
    market_data = ccxt_venue(venue, base_url, None)
    paper = PaperVenue(venue, venue_config(venue, base_url), market_data, SystemClock())
    return Rig("paper", venue, paper, SYMBOLS[venue], sim=SimControl(base_url))


def ccxt_rig(venue: str, base_url: str) -> Rig:
    key = new_api_key()
    return Rig(
        "ccxt", venue, ccxt_venue(venue, base_url, key), SYMBOLS[venue], sim=SimControl(base_url), api_key=key
    )
