"""The exchange simulator for end-to-end runs: the config overrides that point the bot's venues at it
(ccxt urls and options from arbitrage.sim.urls), its accounts and balances. The simulator itself is
the suite's one fixture, `sim_server`/`sim` in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from arbitrage.sim.control import SimControl
from arbitrage.sim.market import DEFAULT_ASSETS
from arbitrage.sim.server import default_balances

VENUES = ("upbit", "binance")
API_KEYS = {"upbit": "e2e-upbit-key", "binance": "e2e-binance-key"}
SIM_RATE_LIMIT_MS = 5
SIM_MAX_ORDERS_PER_S = 100
LIVE_ENV = {
    "LIVE_TRADING": "1",
    "UPBIT_API_KEY": API_KEYS["upbit"],
    "UPBIT_API_SECRET": "e2e-upbit-secret",
    "BINANCE_API_KEY": API_KEYS["binance"],
    "BINANCE_API_SECRET": "e2e-binance-secret",
}


def sim_overrides(base_url: str) -> dict[str, Any]:
    """Config overrides: both venues on the simulator, REST books, room for REST-paced ticks."""
    from arbitrage.sim.urls import sim_options, sim_urls

    return {
        "venues": {
            venue: {
                "urls": sim_urls(venue, base_url),
                "options": sim_options(venue),
                "timeout_ms": 3000,
                # The simulator has no request limit of its own (rate limits are faults a test adds);
                # at ccxt's default (50 ms times each call's cost) a REST-paced tick spends most of
                # its few 100 ms asleep in ccxt's limiter, and the suite most of its time waiting.
                "rate_limit_ms": SIM_RATE_LIMIT_MS,
                # Likewise the bot's own order pacing (live.yml: 5/s on Binance) would set the pace
                # of every trading tick; the pacing itself is tested on its own.
                "max_orders_per_s": SIM_MAX_ORDERS_PER_S,
            }
            for venue in VENUES
        },
        # REST books: fetched each tick.
        "market_data": {"use_websocket": False},
        "watchdog": {"warn_loop_latency_ms": 3000, "max_loop_latency_ms": 10000},
        "sys_monitor": {"warn_cpu_pct": 1000, "max_cpu_pct": 1000},
        "live_guards": {"dry_run_cycles": 2},
    }


def start_balances(coins: Mapping[str, float] = DEFAULT_ASSETS) -> dict[str, dict[str, Decimal]]:
    """What a new account holds on each simulated venue (the simulator's seeded defaults) in a
    market of `coins` (the simulator's `assets`)."""
    return default_balances(coins)


def sim_totals(sim: SimControl, venue: str, api_key: str) -> dict[str, Decimal]:
    """Free plus locked per asset, as the simulator itself keeps them."""
    wallet = sim.balances(venue=venue, api_key=api_key).get(venue, {}).get(api_key, {})
    return {asset: Decimal(a["free"]) + Decimal(a["locked"]) for asset, a in wallet.items()}
