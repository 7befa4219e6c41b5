"""The control API, state that outlives a client (a bot restart), and the foreground `serve()` entry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from arbitrage.sim.control import SimControl, SimControlError
from arbitrage.sim.server import SimServer
from tests.sim.sim_clients import binance_client, upbit_client

ROOT = Path(__file__).resolve().parents[2]


def test_orders_outlive_the_client_that_placed_them(
    sim_server: SimServer, sim: SimControl, api_key: str
) -> None:
    first = upbit_client(sim_server.base_url, api_key)
    bid = first.fetch_order_book("BTC/KRW")["bids"][0][0]
    placed = first.create_order(
        "BTC/KRW", "limit", "buy", 0.001, bid * 0.9 // 1000 * 1000, {"clientOrderId": "r-1"}
    )
    restarted = upbit_client(sim_server.base_url, api_key)  # a new process would hold a new client
    assert restarted.privateGetOrder({"identifier": "r-1"})["uuid"] == placed["id"]
    assert [o["id"] for o in restarted.fetch_open_orders("BTC/KRW")] == [placed["id"]]
    restarted.cancel_order(placed["id"])


def test_balances_can_be_set_and_are_per_api_key(
    sim_server: SimServer, sim: SimControl, api_key: str
) -> None:
    sim.set_balance("binance", api_key, "USDT", "12.5")
    binance = binance_client(sim_server.base_url, api_key)
    assert binance.fetch_balance()["USDT"]["free"] == 12.5
    other = binance_client(sim_server.base_url, api_key + "-other")
    assert other.fetch_balance()["USDT"]["free"] == 250_000.0
    assert sim.balances("binance", api_key)["binance"][api_key]["USDT"] == {"free": "12.5", "locked": "0"}
    with pytest.raises(SimControlError, match="venue"):
        sim.set_balance("kraken", api_key, "USDT", 1)


def test_steering_the_premium_moves_upbit_against_binance(sim: SimControl) -> None:
    # set_mean: the premium would otherwise start reverting at the next book step (100 ms), which a
    # loaded machine can reach between the two reads below.
    state = sim.steer(asset="BTC", premium_pct=5.0, set_mean=True)
    upbit_mid = float(sim.book("upbit", "KRW-BTC", depth=1)["bids"][0][0])
    binance_mid = float(sim.book("binance", "BTCUSDT", depth=1)["bids"][0][0])
    assert upbit_mid / (binance_mid * state["usdt_krw"]) == pytest.approx(1.05, rel=0.005)
    sim.steer(asset="BTC", premium_pct=0.8, set_mean=True)


def test_health_requests_log_and_reset(sim_server: SimServer, sim: SimControl, api_key: str) -> None:
    assert sim.health()["venues"]["upbit"]["markets"] == ["KRW-BTC", "KRW-ETH", "KRW-USDT"]
    binance = binance_client(sim_server.base_url, api_key)
    binance.fetch_time()
    assert sim.requests(venue="binance", op="time")[-1]["path"].endswith("/api/v3/time")
    sim.set_balance("binance", api_key, "USDT", 1)
    sim.reset()
    assert sim.orders() == []
    assert binance.fetch_balance()["USDT"]["free"] == 250_000.0


def test_serve_runs_in_the_foreground_until_sigterm() -> None:
    code = "from arbitrage.sim.server import serve; serve(port=0, seed=3, tick_ms=50)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("exchange simulator on http://127.0.0.1:"), first + (
            proc.stderr.read() if proc.stderr else ""
        )
        base_url = first.split()[-1]
        assert SimControl(base_url).health()["seed"] == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
