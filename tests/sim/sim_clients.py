"""Real ccxt clients pointed at the simulator, with dummy keys (the sim accepts any signature)."""

from __future__ import annotations

from typing import Any

import ccxt

from arbitrage.sim.urls import sim_options, sim_urls


def binance_client(base_url: str, key: str, **config: Any) -> ccxt.binance:
    return ccxt.binance(
        {"apiKey": key, "secret": "dummy-secret", "urls": sim_urls("binance", base_url),
         "options": sim_options("binance"), "timeout": 5000, **config}
    )  # fmt: skip


def upbit_client(base_url: str, key: str, **config: Any) -> ccxt.upbit:
    return ccxt.upbit(
        {"apiKey": key, "secret": "dummy-secret", "urls": sim_urls("upbit", base_url),
         "options": sim_options("upbit"), "timeout": 5000, **config}
    )  # fmt: skip
