"""The real sync ccxt.upbit client against the simulator over a real socket."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from arbitrage.domain.money import upbit_krw_tick
from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from tests.sim.sim_clients import upbit_client

SYMBOL = "BTC/KRW"


@pytest.fixture
def upbit(sim_server: SimServer, api_key: str) -> ccxt.upbit:
    client = upbit_client(sim_server.base_url, api_key)
    client.load_markets()
    return client


def krw_floor(price: float) -> float:
    """The price floored to Upbit's KRW tick (ccxt does not do it for Upbit)."""
    tick = upbit_krw_tick(Decimal(int(price)))
    return float(Decimal(int(price)) // tick * tick)


def test_markets_book_balance_and_fee(upbit: ccxt.upbit) -> None:
    assert set(upbit.symbols) == {"BTC/KRW", "ETH/KRW", "USDT/KRW"}
    book = upbit.fetch_order_book(SYMBOL)
    assert book["bids"][0][0] < book["asks"][0][0]
    assert book["timestamp"] > 0
    for price, _ in book["bids"] + book["asks"]:
        assert Decimal(repr(price)) % upbit_krw_tick(Decimal(repr(price))) == 0
    balance = upbit.fetch_balance()
    assert balance["KRW"]["free"] == 350_000_000.0
    assert upbit.fetch_trading_fee(SYMBOL)["taker"] == 0.0005
    chance = upbit.privateGetOrdersChance({"market": "KRW-BTC"})
    assert chance["market"]["bid"]["min_total"] == "5000"


def test_ioc_order_is_accepted_then_matched_and_found_by_identifier(
    upbit: ccxt.upbit, sim: SimControl
) -> None:
    ask = upbit.fetch_order_book(SYMBOL)["asks"][0][0]
    price = krw_floor(ask * 1.01)
    created = upbit.create_order(
        SYMBOL, "limit", "buy", 0.01, price, {"timeInForce": "IOC", "clientOrderId": "u-1"}
    )
    # Upbit answers with the order as accepted; the outcome is read back
    assert created["status"] == "open"
    assert created["filled"] == 0
    fetched = upbit.fetch_order(created["id"])
    assert fetched["status"] == "closed"
    assert fetched["filled"] == 0.01
    assert fetched["fee"]["currency"] == "KRW"
    assert float(fetched["fee"]["cost"]) == pytest.approx(fetched["cost"] * 0.0005)
    raw = upbit.privateGetOrder({"identifier": "u-1"})
    assert raw["uuid"] == created["id"]
    assert raw["state"] == "done"
    assert upbit.parse_order(raw)["clientOrderId"] == "u-1"
    balance = upbit.fetch_balance()
    assert balance["BTC"]["total"] == pytest.approx(1.01)
    assert balance["KRW"]["used"] == 0
    assert balance["KRW"]["total"] == pytest.approx(350_000_000 - fetched["cost"] * 1.0005)
    assert [o["status"] for o in sim.orders(venue="upbit", client_id="u-1")] == ["FILLED"]


def test_identifier_is_spent_forever_even_by_a_refused_order(upbit: ccxt.upbit) -> None:
    bid = upbit.fetch_order_book(SYMBOL)["bids"][0][0]
    with pytest.raises(ccxt.InsufficientFunds):
        upbit.create_order(SYMBOL, "limit", "buy", 10, bid, {"clientOrderId": "u-spent"})
    with pytest.raises(ccxt.ExchangeError, match="identifier"):
        upbit.create_order(SYMBOL, "limit", "buy", 0.001, bid, {"clientOrderId": "u-spent"})
    with pytest.raises(ccxt.OrderNotFound):
        upbit.privateGetOrder({"identifier": "u-spent"})


def test_tick_and_minimum_total_refusals(upbit: ccxt.upbit) -> None:
    bid = upbit.fetch_order_book(SYMBOL)["bids"][0][0]
    with pytest.raises(ccxt.ExchangeError, match="invalid_price_bid"):
        upbit.create_order(SYMBOL, "limit", "buy", 0.001, bid + 1, {"timeInForce": "IOC"})
    with pytest.raises(ccxt.ExchangeError, match="invalid_price_ask"):
        upbit.create_order(SYMBOL, "limit", "sell", 0.001, bid + 1, {"timeInForce": "IOC"})
    with pytest.raises(ccxt.ExchangeError, match="under_min_total_bid"):
        upbit.create_order(SYMBOL, "limit", "buy", 0.00001, bid, {"timeInForce": "IOC"})
    with pytest.raises(ccxt.OrderNotFound):
        upbit.fetch_order("00000000-0000-4000-8000-000000000000")


def test_resting_order_cancel_and_open_orders(upbit: ccxt.upbit) -> None:
    bid = upbit.fetch_order_book(SYMBOL)["bids"][0][0]
    resting = upbit.create_order(
        SYMBOL, "limit", "buy", 0.001, krw_floor(bid * 0.9), {"clientOrderId": "u-gtc"}
    )
    assert [o["id"] for o in upbit.fetch_open_orders(SYMBOL)] == [resting["id"]]
    assert upbit.fetch_balance()["KRW"]["used"] > 0
    upbit.cancel_order(resting["id"])
    assert upbit.fetch_order(resting["id"])["status"] == "canceled"
    assert upbit.fetch_open_orders(SYMBOL) == []
    assert upbit.fetch_balance()["KRW"]["used"] == 0
    with pytest.raises(ccxt.OrderNotFound):
        upbit.cancel_order(resting["id"])


def test_test_order_validates_without_placing(upbit: ccxt.upbit, sim: SimControl) -> None:
    bid = upbit.fetch_order_book(SYMBOL)["bids"][0][0]
    probe = upbit.create_order(SYMBOL, "limit", "buy", 0.001, bid, {"test": True, "clientOrderId": "u-test"})
    assert probe["id"]
    assert sim.orders(client_id="u-test") == []
    with pytest.raises(ccxt.ExchangeError, match="invalid_price_bid"):
        upbit.create_order(SYMBOL, "limit", "buy", 0.001, bid + 1, {"test": True})


def test_partial_fill_fault_cancels_the_rest(upbit: ccxt.upbit, sim: SimControl) -> None:
    sim.add_fault("partial_fill", venue="upbit", count=1, fill_ratio=0.25)
    bid = upbit.fetch_order_book(SYMBOL)["bids"][0][0]
    created = upbit.create_order(SYMBOL, "limit", "sell", 0.04, krw_floor(bid * 0.99), {"timeInForce": "IOC"})
    fetched = upbit.fetch_order(created["id"])
    assert fetched["status"] == "canceled"
    assert fetched["filled"] == pytest.approx(0.01)
    assert fetched["remaining"] == pytest.approx(0.03)
    assert upbit.fetch_balance()["BTC"]["total"] == pytest.approx(0.99)
