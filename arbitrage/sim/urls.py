"""The ccxt `urls` and `options` overrides that point a ccxt / ccxt.pro client at the simulator.

One simulator port serves both venues under path prefixes (see arbitrage.sim.server):

    http://HOST:PORT/binance/api/v3/...        Binance spot REST (ccxt `public`, `private`)
    http://HOST:PORT/binance/sapi/v1/...       the one sapi call used: asset/tradeFee
    ws://HOST:PORT/binance/stream/ws/<n>       Binance market streams (SUBSCRIBE JSON)
    http://HOST:PORT/upbit/v1/...              Upbit REST (ccxt `public`, `private`)
    ws://HOST:PORT/upbit/websocket/v1          Upbit WebSocket (JSON array subscription)
    http://HOST:PORT/_sim/...                  the control API (arbitrage.sim.control)

A venue config uses both dicts as they are, with `sandbox: false` (ccxt's sandbox mode swaps the
`api` URLs back to the real testnet):

    venues:
      binance:
        exchange: binance
        urls: {api: {public: http://127.0.0.1:8765/binance/api/v3, ...}}   # sim_urls("binance", ...)
        options: {fetchCurrencies: false, fetchMargins: false, fetchMarkets: {types: [spot]}}

ccxt deep-merges `urls` into its defaults, so the futures URLs it keeps are never called: the
options below keep ccxt 4.5.x binance on spot only (exchangeInfo from /api/v3 and nothing else).
"""

from __future__ import annotations

from typing import Any

SUPPORTED = ("binance", "upbit")


def _ws_base(base_url: str) -> str:
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :]
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :]
    raise ValueError(f"simulator base URL must start with http:// or https://, got {base_url!r}")


def sim_urls(exchange_id: str, base_url: str) -> dict[str, Any]:
    """The ccxt `urls` override for `exchange_id` ("binance" or "upbit") against the sim at `base_url`."""
    base = base_url.rstrip("/")
    ws = _ws_base(base)
    if exchange_id == "binance":
        rest = f"{base}/binance/api/v3"
        stream = f"{ws}/binance/stream/ws"  # ccxt.pro tells spot from futures by "/stream" in the URL
        return {
            "api": {
                "public": rest,
                "private": rest,
                "v1": f"{base}/binance/api/v1",
                "sapi": f"{base}/binance/sapi/v1",
                "ws": {"spot": stream, "margin": stream},
            }
        }
    if exchange_id == "upbit":
        rest = f"{base}/upbit"  # ccxt appends /v1/<path>
        return {"api": {"public": rest, "private": rest, "ws": f"{ws}/upbit/websocket/v1"}}
    raise ValueError(f"the simulator speaks {', '.join(SUPPORTED)}, not {exchange_id!r}")


def sim_options(exchange_id: str) -> dict[str, Any]:
    """The ccxt `options` a client needs against the sim (ccxt 4.5.90 source checked)."""
    if exchange_id == "binance":
        return {
            # load_markets would call sapi capital/config/getall (fetchCurrencies) and
            # margin/allPairs (fetchMargins), and fapi/dapi exchangeInfo (fetchMarkets types)
            "defaultType": "spot",
            "fetchCurrencies": False,
            "fetchMargins": False,
            "fetchMarkets": {"types": ["spot"]},
        }
    if exchange_id == "upbit":
        return {}
    raise ValueError(f"the simulator speaks {', '.join(SUPPORTED)}, not {exchange_id!r}")
