"""The real sync ccxt.binance client against the simulator over a real socket."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from tests.sim.sim_clients import binance_client

SYMBOL = "BTC/USDT"


@pytest.fixture
def binance(sim_server: SimServer, api_key: str) -> ccxt.binance:
    client = binance_client(sim_server.base_url, api_key)
    client.load_markets()
    return client


def test_markets_carry_binance_filters(binance: ccxt.binance) -> None:
    market = binance.market(SYMBOL)
    assert set(binance.symbols) == {"BTC/USDT", "ETH/USDT"}
    assert market["spot"] and market["active"]
    assert market["precision"]["price"] == 0.01
    assert market["precision"]["amount"] == 0.00001
    assert market["limits"]["cost"]["min"] == 5.0


def test_order_book_and_balance(binance: ccxt.binance) -> None:
    book = binance.fetch_order_book(SYMBOL, 10)
    assert 0 < len(book["bids"]) <= 10
    assert book["bids"][0][0] < book["asks"][0][0]
    assert book["nonce"] > 0
    balance = binance.fetch_balance()
    assert balance["USDT"]["free"] == 250_000.0
    assert balance["BTC"]["free"] == 1.0


def test_ioc_buy_fills_and_is_found_by_id_and_client_id(binance: ccxt.binance, sim: SimControl) -> None:
    ask = binance.fetch_order_book(SYMBOL)["asks"][0][0]
    order = binance.create_order(
        SYMBOL, "limit", "buy", 0.01, ask * 1.01, {"timeInForce": "IOC", "clientOrderId": "arb-b-1"}
    )
    assert order["status"] == "closed"
    assert order["filled"] == 0.01
    assert order["clientOrderId"] == "arb-b-1"
    assert order["fee"]["currency"] == "BTC"
    assert order["fee"]["cost"] == pytest.approx(0.00001)
    by_id = binance.fetch_order(order["id"], SYMBOL)
    by_client = binance.fetch_order(None, SYMBOL, {"origClientOrderId": "arb-b-1"})
    assert by_id["id"] == by_client["id"] == order["id"]
    assert by_client["info"]["status"] == "FILLED"
    assert Decimal(by_client["info"]["cummulativeQuoteQty"]) > 0
    recorded = sim.orders(venue="binance", client_id="arb-b-1", api_key=binance.apiKey)
    assert [o["status"] for o in recorded] == ["FILLED"]
    balance = binance.fetch_balance()
    assert balance["BTC"]["total"] == pytest.approx(1.0 + 0.01 - 0.00001)
    assert balance["USDT"]["total"] == pytest.approx(250_000.0 - order["cost"])
    trades = binance.fetch_my_trades(SYMBOL)
    assert sum(t["amount"] for t in trades) == pytest.approx(0.01)


def test_resting_order_cancel_and_duplicate_client_id(binance: ccxt.binance) -> None:
    bid = binance.fetch_order_book(SYMBOL)["bids"][0][0]
    resting = binance.create_order(SYMBOL, "limit", "buy", 0.001, bid * 0.9, {"clientOrderId": "arb-b-gtc"})
    assert resting["status"] == "open"
    assert binance.fetch_balance()["USDT"]["used"] > 0
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        binance.create_order(SYMBOL, "limit", "buy", 0.001, bid * 0.9, {"clientOrderId": "arb-b-gtc"})
    assert [o["id"] for o in binance.fetch_open_orders(SYMBOL)] == [resting["id"]]
    cancelled = binance.cancel_order(resting["id"], SYMBOL)
    assert cancelled["status"] == "canceled"
    assert cancelled["info"]["origClientOrderId"] == "arb-b-gtc"
    assert binance.fetch_balance()["USDT"]["used"] == 0
    with pytest.raises(ccxt.OrderNotFound):
        binance.cancel_order(resting["id"], SYMBOL)
    # as on Binance, a client id is unique among OPEN orders only: once closed it may be used again
    again = binance.create_order(SYMBOL, "limit", "buy", 0.001, bid * 0.9, {"clientOrderId": "arb-b-gtc"})
    assert again["id"] != resting["id"]
    binance.cancel_order(again["id"], SYMBOL)


def test_refusals_raise_ccxt_classes(binance: ccxt.binance) -> None:
    ask = binance.fetch_order_book(SYMBOL)["asks"][0][0]
    with pytest.raises(ccxt.InsufficientFunds):
        binance.create_order(SYMBOL, "limit", "buy", 5, ask, {"timeInForce": "IOC"})
    with pytest.raises(ccxt.OrderNotFound):
        binance.fetch_order("123", SYMBOL)
    with pytest.raises(ccxt.OrderNotFound):
        binance.fetch_order(None, SYMBOL, {"origClientOrderId": "never-sent"})
    raw = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "IOC", "quantity": "0.001"}
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        binance.privatePostOrder({**raw, "price": "100000.005"})
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        binance.privatePostOrder({**raw, "quantity": "0.0012345", "price": "100000.00"})
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
        binance.privatePostOrder({**raw, "quantity": "0.00001", "price": "100000.00"})
    with pytest.raises(ccxt.BadSymbol):
        binance.privatePostOrder({**raw, "symbol": "DOGEUSDT", "price": "1.00"})


def test_forced_partial_fill_and_reject_faults(binance: ccxt.binance, sim: SimControl) -> None:
    sim.add_fault("partial_fill", venue="binance", count=1, fill_ratio=0.5)
    ask = binance.fetch_order_book(SYMBOL)["asks"][0][0]
    order = binance.create_order(SYMBOL, "limit", "buy", 0.02, ask * 1.01, {"timeInForce": "IOC"})
    assert order["status"] == "expired"
    assert order["filled"] == pytest.approx(0.01)
    assert binance.fetch_balance()["USDT"]["used"] == 0
    sim.add_fault("reject", venue="binance", count=1)
    with pytest.raises(ccxt.InvalidOrder):
        binance.create_order(SYMBOL, "limit", "buy", 0.001, ask * 1.01, {"timeInForce": "IOC"})
    assert (
        binance.create_order(SYMBOL, "limit", "buy", 0.001, ask * 1.01, {"timeInForce": "IOC"})["filled"] > 0
    )


def test_resting_order_fills_when_the_book_moves_through_it(binance: ccxt.binance, sim: SimControl) -> None:
    sim.set_book("binance", "BTCUSDT", bids=[["99000", "1"]], asks=[["101000", "1"]])
    order = binance.create_order(SYMBOL, "limit", "buy", 0.01, 100_000, {"clientOrderId": "arb-b-rest"})
    assert order["status"] == "open"
    sim.set_book("binance", "BTCUSDT", asks=[["99900", "0.004"], ["99950", "1"]])
    filled = binance.fetch_order(order["id"], SYMBOL)
    assert filled["status"] == "closed"
    assert filled["average"] == pytest.approx((0.004 * 99900 + 0.006 * 99950) / 0.01)
    assert sim.book("binance", "BTCUSDT")["asks"][0] == ["99950", "0.994"]


def test_trading_fee_and_test_order(binance: ccxt.binance, sim: SimControl) -> None:
    assert binance.fetch_trading_fee(SYMBOL)["taker"] == 0.001
    ask = binance.fetch_order_book(SYMBOL)["asks"][0][0]
    binance.create_order(SYMBOL, "limit", "buy", 0.001, ask, {"test": True, "clientOrderId": "arb-b-test"})
    assert sim.orders(client_id="arb-b-test") == []
