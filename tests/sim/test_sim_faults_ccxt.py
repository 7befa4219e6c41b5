"""Injected faults as the real ccxt clients see them: 5xx, 429/418, timeouts, latency, unknown outcomes."""

from __future__ import annotations

import ccxt
import pytest

from arbitrage.sim.control import SimControl, SimControlError
from arbitrage.sim.server import SimServer
from tests.sim.sim_clients import binance_client, upbit_client


@pytest.fixture
def binance(sim_server: SimServer, api_key: str) -> ccxt.binance:
    client = binance_client(sim_server.base_url, api_key)
    client.load_markets()
    return client


@pytest.fixture
def upbit(sim_server: SimServer, api_key: str) -> ccxt.upbit:
    client = upbit_client(sim_server.base_url, api_key)
    client.load_markets()
    return client


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_exchange_not_available(
    binance: ccxt.binance, upbit: ccxt.upbit, sim: SimControl, status: int
) -> None:
    sim.add_fault("error", ops=["order_book"], count=2, status=status)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        binance.fetch_order_book("BTC/USDT")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        upbit.fetch_order_book("BTC/KRW")
    assert binance.fetch_order_book("BTC/USDT")["bids"]  # count spent: the next call goes through
    assert sim.faults() == []


def test_create_5xx_with_place_is_an_unknown_outcome_resolved_by_client_id(
    binance: ccxt.binance, sim: SimControl
) -> None:
    sim.add_fault("error", venue="binance", ops=["create_order"], count=1, status=502, place=True)
    ask = binance.fetch_order_book("BTC/USDT")["asks"][0][0]
    with pytest.raises(ccxt.NetworkError):
        binance.create_order(
            "BTC/USDT", "limit", "buy", 0.001, ask * 1.01, {"timeInForce": "IOC", "clientOrderId": "unk-1"}
        )
    placed = binance.fetch_order(None, "BTC/USDT", {"origClientOrderId": "unk-1"})
    assert placed["status"] == "closed"
    assert len(sim.orders(client_id="unk-1")) == 1


def test_create_5xx_without_place_never_reaches_the_book(upbit: ccxt.upbit, sim: SimControl) -> None:
    sim.add_fault("error", venue="upbit", ops=["create_order"], count=1, status=500)
    bid = upbit.fetch_order_book("BTC/KRW")["bids"][0][0]
    with pytest.raises(ccxt.ExchangeNotAvailable):
        upbit.create_order("BTC/KRW", "limit", "buy", 0.001, bid, {"clientOrderId": "lost-1"})
    assert sim.orders(client_id="lost-1") == []
    with pytest.raises(ccxt.OrderNotFound):
        upbit.privateGetOrder({"identifier": "lost-1"})


def test_binance_429_then_418_when_the_client_does_not_back_off(
    binance: ccxt.binance, sim: SimControl
) -> None:
    sim.add_fault(
        "rate_limit", venue="binance", ops=["balance"], count=1, retry_after_s=30, ban_after=2, ban_s=120
    )
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        binance.fetch_balance()
    assert binance.last_response_headers["Retry-After"] == "30"
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        binance.fetch_order_book("BTC/USDT")  # inside the Retry-After window: a violation
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        binance.fetch_time()
    assert binance.last_response_headers["Retry-After"] == "120"
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        binance.fetch_time()
    sim.clear_faults()  # lifts the ban
    assert binance.fetch_time() > 0


def test_upbit_429_is_rate_limit_exceeded_with_retry_after(upbit: ccxt.upbit, sim: SimControl) -> None:
    sim.add_fault("rate_limit", venue="upbit", ops=["create_order"], count=1, retry_after_s=1)
    bid = upbit.fetch_order_book("BTC/KRW")["bids"][0][0]
    with pytest.raises(ccxt.RateLimitExceeded):
        upbit.create_order("BTC/KRW", "limit", "buy", 0.001, bid, {"clientOrderId": "rl-1"})
    assert upbit.last_response_headers["Retry-After"] == "1"
    assert sim.orders(client_id="rl-1") == []


def test_timeout_is_request_timeout_and_may_still_place(
    sim_server: SimServer, api_key: str, sim: SimControl
) -> None:
    binance = binance_client(sim_server.base_url, api_key, timeout=800)
    binance.load_markets()
    sim.add_fault("timeout", venue="binance", ops=["order_book"], count=1, hang_s=3)
    with pytest.raises(ccxt.RequestTimeout):
        binance.fetch_order_book("BTC/USDT")
    sim.add_fault("timeout", venue="binance", ops=["create_order"], count=1, hang_s=3, place=True)
    ask = binance.fetch_order_book("BTC/USDT")["asks"][0][0]
    with pytest.raises(ccxt.RequestTimeout):
        binance.create_order(
            "BTC/USDT", "limit", "buy", 0.001, ask * 1.01, {"timeInForce": "IOC", "clientOrderId": "to-1"}
        )
    assert binance.fetch_order(None, "BTC/USDT", {"origClientOrderId": "to-1"})["filled"] == 0.001


def test_latency_is_added_and_logged(upbit: ccxt.upbit, sim: SimControl) -> None:
    sim.add_fault("latency", venue="upbit", ops=["balance"], count=1, ms=250)
    upbit.fetch_balance()
    logged = sim.requests(venue="upbit", op="balance")[-1]
    assert logged["status"] == 200
    assert logged["ms"] >= 250


def test_rate_zero_never_fires_and_bad_rules_are_refused(binance: ccxt.binance, sim: SimControl) -> None:
    sim.add_fault("error", venue="binance", rate=0.0)
    assert binance.fetch_order_book("BTC/USDT")["bids"]
    with pytest.raises(SimControlError, match="ops"):
        sim.add_fault("error", ops=["no_such_op"])
    with pytest.raises(SimControlError, match="kind"):
        sim.add_fault("earthquake")
