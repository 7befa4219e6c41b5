"""The ccxt venue against the simulator's injected faults: unknown outcomes, 429s, 5xx, the breaker.

Real ccxt clients, a real SimServer on 127.0.0.1; the simulator's own order list and request log
are the witnesses (an order placed once, a call that never reached it).
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from arbitrage.clock import FakeClock
from arbitrage.domain.money import dec, upbit_krw_tick
from arbitrage.domain.orders import OrderRequest, OrderState
from arbitrage.errors import RateLimited, TemporaryVenueError, UnknownOrderOutcome
from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from arbitrage.venues.ccxt_venue import CcxtVenue
from arbitrage.venues.circuit import CLOSED, OPEN
from tests.venues.venue_rigs import SYMBOLS, ccxt_venue, new_api_key

SIM_SEED = 23

VENUES = ("upbit", "binance")


def venue_on(sim_server: SimServer, venue: str, **extra: object) -> tuple[CcxtVenue, str]:
    key = new_api_key()
    return ccxt_venue(venue, sim_server.base_url, key, **extra), key  # type: ignore[arg-type]


def marketable_buy(venue: CcxtVenue, name: str, cid: str, notional: Decimal | None = None) -> OrderRequest:
    symbol = SYMBOLS[name]
    book = venue.order_book(symbol, 5)
    rules = venue.rules(symbol)
    price = rules.round_price(dec(book.best_ask or 0.0) * Decimal("1.003"), "buy")
    spend = notional or (Decimal(200_000) if name == "upbit" else Decimal(150))
    return OrderRequest(cid, name, symbol, "buy", rules.round_qty(spend / price) + rules.qty_step, price)


def requests_of(sim: SimControl, venue: str, op: str) -> list[dict[str, object]]:
    return sim.requests(venue=venue, op=op, limit=5000)


# Unknown outcomes on create: looked up, never resent ----------------------------------------


@pytest.mark.parametrize("venue_name", VENUES)
def test_5xx_on_create_after_placing_is_unknown_then_found_once(
    sim_server: SimServer, sim: SimControl, venue_name: str
) -> None:
    venue, key = venue_on(sim_server, venue_name)
    order = marketable_buy(venue, venue_name, "unk5-B")
    sim.add_fault("error", venue=venue_name, ops=["create_order"], count=1, status=502, place=True)
    with pytest.raises(UnknownOrderOutcome) as raised:
        venue.submit(order)
    assert key not in str(raised.value) and "sim-secret" not in str(raised.value)
    found = venue.fetch_order(order.symbol, order.client_order_id)
    assert found is not None and found.state is OrderState.FILLED and found.filled_qty == order.qty
    assert len(sim.orders(client_id=order.client_order_id, api_key=key)) == 1
    venue.close()


@pytest.mark.parametrize("venue_name", VENUES)
def test_timeout_on_create_after_placing_is_unknown_then_found_once(
    sim_server: SimServer, sim: SimControl, venue_name: str
) -> None:
    venue, key = venue_on(sim_server, venue_name, timeout_ms=700)
    order = marketable_buy(venue, venue_name, "unkt-B")
    sim.add_fault("timeout", venue=venue_name, ops=["create_order"], count=1, hang_s=2, place=True)
    with pytest.raises(UnknownOrderOutcome):
        venue.submit(order)
    found = venue.fetch_order(order.symbol, order.client_order_id)
    assert found is not None and found.state is OrderState.FILLED
    assert len(sim.orders(client_id=order.client_order_id, api_key=key)) == 1
    venue.close()


def test_5xx_on_create_before_placing_is_unknown_and_then_not_found(
    sim_server: SimServer, sim: SimControl
) -> None:
    venue, key = venue_on(sim_server, "upbit")
    order = marketable_buy(venue, "upbit", "lost-B")
    sim.add_fault("error", venue="upbit", ops=["create_order"], count=1, status=500)
    with pytest.raises(UnknownOrderOutcome):
        venue.submit(order)
    assert venue.fetch_order(order.symbol, order.client_order_id) is None
    assert sim.orders(client_id=order.client_order_id, api_key=key) == []
    venue.close()


# Rate limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("venue_name", VENUES)
def test_429_on_create_is_rate_limited_and_the_venue_waits_out_retry_after(
    sim_server: SimServer, sim: SimControl, venue_name: str
) -> None:
    venue, key = venue_on(sim_server, venue_name)
    order = marketable_buy(venue, venue_name, "rl-B")
    sim.add_fault("rate_limit", venue=venue_name, ops=["create_order"], count=1, retry_after_s=1)
    with pytest.raises(RateLimited) as raised:
        venue.submit(order)
    assert raised.value.retry_after_s is not None and 0 < raised.value.retry_after_s <= 1.0
    assert sim.orders(client_id=order.client_order_id, api_key=key) == []
    assert venue.degraded
    books_before = len(requests_of(sim, venue_name, "order_book"))
    with pytest.raises(RateLimited):
        venue.order_book(order.symbol, 5)  # fails fast: calling inside the window earns a 418
    assert len(requests_of(sim, venue_name, "order_book")) == books_before
    time.sleep(1.2)  # the simulator keeps its 429 window in real time: wait it out as a client would
    assert venue.order_book(order.symbol, 5).bids
    assert not venue.degraded
    assert all(r["status"] != 418 for r in requests_of(sim, venue_name, "order_book"))
    venue.close()


def test_order_rate_above_the_limit_is_refused_before_sending(sim_server: SimServer, sim: SimControl) -> None:
    venue, key = venue_on(sim_server, "binance", max_orders_per_s=1.0)
    first = marketable_buy(venue, "binance", "or-1-B")
    second = marketable_buy(venue, "binance", "or-2-B")
    assert venue.submit(first).state is OrderState.FILLED
    with pytest.raises(RateLimited, match="max_orders_per_s"):
        venue.submit(second)
    assert sim.orders(client_id="or-2-B", api_key=key) == []
    assert venue.orders_last_minute == 1
    venue.close()


# Reads: retried with backoff; the breaker -------------------------------------------------


@pytest.mark.parametrize("venue_name", VENUES)
def test_5xx_on_reads_is_retried(sim_server: SimServer, sim: SimControl, venue_name: str) -> None:
    venue, _ = venue_on(sim_server, venue_name)
    before = len(requests_of(sim, venue_name, "order_book"))
    sim.add_fault("error", venue=venue_name, ops=["order_book"], count=2, status=503)
    assert venue.order_book(SYMBOLS[venue_name], 5).asks
    statuses = [r["status"] for r in requests_of(sim, venue_name, "order_book")[before:]]
    assert statuses == [503, 503, 200]
    sim.add_fault("error", venue=venue_name, ops=["balance"], count=1, status=500)
    assert venue.balances()
    venue.close()


def test_a_read_that_keeps_failing_raises_a_temporary_error(sim_server: SimServer, sim: SimControl) -> None:
    venue, _ = venue_on(sim_server, "binance")
    sim.add_fault("error", venue="binance", ops=["order_book"], status=503)
    before = len(requests_of(sim, "binance", "order_book"))
    with pytest.raises(TemporaryVenueError) as raised:
        venue.order_book("BTC/USDT", 5)
    assert not isinstance(raised.value, RateLimited)
    assert len(requests_of(sim, "binance", "order_book")) - before == 3  # the first try and two retries
    venue.close()


def test_circuit_breaker_opens_after_n_failures_and_closes_after_a_good_probe(
    sim_server: SimServer, sim: SimControl
) -> None:
    clock = FakeClock()  # the cooldown passes when the test says so, not after a sleep
    venue, _ = venue_on(
        sim_server, "upbit", clock=clock, circuit_failures=3, circuit_cooldown_s=0.5, read_delays_s=()
    )
    rule = sim.add_fault("error", venue="upbit", ops=["order_book"], status=503)
    for _ in range(3):
        with pytest.raises(TemporaryVenueError):
            venue.order_book("BTC/KRW", 5)
    assert venue.degraded and venue.breaker.state == OPEN
    before = len(requests_of(sim, "upbit", "order_book"))
    with pytest.raises(TemporaryVenueError, match="circuit breaker open"):
        venue.order_book("BTC/KRW", 5)
    assert len(requests_of(sim, "upbit", "order_book")) == before  # failed fast
    clock.advance(0.6)
    with pytest.raises(TemporaryVenueError):
        venue.order_book("BTC/KRW", 5)  # the probe fails: open for another cooldown
    assert venue.breaker.state == OPEN
    sim.remove_fault(rule)
    clock.advance(0.6)
    assert venue.order_book("BTC/KRW", 5).bids  # the probe succeeds
    assert venue.breaker.state == CLOSED and not venue.degraded
    assert venue.describe()["circuit"] == {
        "state": "closed",
        "consecutive_failures": 0,
        "trips": 2,
        "outages": 1,  # one outage, its probe failing once
        "paused_s": 0.0,
    }
    venue.close()


# Refusals and Upbit's tick ---------------------------------------------------------------


@pytest.mark.parametrize("venue_name", VENUES)
def test_refused_orders_are_rejected_reports_without_secrets(
    sim_server: SimServer, sim: SimControl, venue_name: str
) -> None:
    venue, key = venue_on(sim_server, venue_name)
    order = marketable_buy(venue, venue_name, "rej-B")
    sim.add_fault("reject", venue=venue_name, ops=["create_order"], count=1)
    report = venue.submit(order)
    assert report.state is OrderState.REJECTED and report.filled_qty == 0
    assert report.reason and key not in report.reason and "sim-secret" not in report.reason
    broke = marketable_buy(venue, venue_name, "poor-B", notional=Decimal(10**12))
    poor = venue.submit(broke)
    assert poor.state is OrderState.REJECTED and "InsufficientFunds" in (poor.reason or "")
    assert venue.breaker.consecutive_failures == 0  # the venue answered: no fault of its own
    venue.close()


def test_upbit_prices_are_rounded_to_its_tick_table(sim_server: SimServer, sim: SimControl) -> None:
    venue, key = venue_on(sim_server, "upbit")
    book = venue.order_book("BTC/KRW", 5)
    odd_buy = dec(book.best_ask or 0.0) * Decimal("1.0031") + Decimal("0.37")
    odd_sell = dec(book.best_bid or 0.0) * Decimal("0.9969") + Decimal("0.37")
    buy = venue.submit(OrderRequest("tick-B", "upbit", "BTC/KRW", "buy", Decimal("0.002"), odd_buy))
    sell = venue.submit(OrderRequest("tick-S", "upbit", "BTC/KRW", "sell", Decimal("0.002"), odd_sell))
    assert buy.state is OrderState.FILLED and sell.state is OrderState.FILLED
    placed = {o["client_id"]: Decimal(o["price"]) for o in sim.orders(venue="upbit", api_key=key)}
    assert placed["tick-B"] <= odd_buy and placed["tick-S"] >= odd_sell
    for price in placed.values():
        assert price % upbit_krw_tick(price) == 0
    creates = requests_of(sim, "upbit", "create_order")
    assert all(r["status"] == 201 for r in creates[-2:])
    venue.close()


def test_upbit_partial_fill_ends_expired_with_what_filled(sim_server: SimServer, sim: SimControl) -> None:
    venue, _ = venue_on(sim_server, "upbit")
    order = marketable_buy(venue, "upbit", "part-B", notional=Decimal(2_000_000))
    sim.add_fault("partial_fill", venue="upbit", ops=["create_order"], count=1, fill_ratio=0.5)
    report = venue.submit(order)
    assert report.state is OrderState.EXPIRED
    assert 0 < report.filled_qty < order.qty and report.fee > 0
    assert venue.cancel(order.symbol, order.client_order_id) == report
    venue.close()


def test_a_book_with_one_side_shorter_has_no_empty_levels(sim_server: SimServer, sim: SimControl) -> None:
    venue, _ = venue_on(sim_server, "upbit")
    sim.set_book(
        "upbit", "KRW-BTC", bids=[["140000000", "0.5"]], asks=[["140100000", "1"], ["140200000", "2"]]
    )
    book = venue.order_book("BTC/KRW", 10)
    assert book.bids == ((140_000_000.0, 0.5),)
    assert book.asks == ((140_100_000.0, 1.0), (140_200_000.0, 2.0))
    venue.close()


# Where a buy's fee is taken ------------------------------------------------------------------


@pytest.mark.parametrize("venue_name", VENUES)
def test_a_buys_fee_taken_from_the_coin_is_reported_in_the_coin(
    sim_server: SimServer, sim: SimControl, venue_name: str
) -> None:
    venue, key = venue_on(sim_server, venue_name)
    order = marketable_buy(venue, venue_name, "cfee-B")
    report = venue.submit(order)
    (placed,) = sim.orders(client_id=order.client_order_id, api_key=key)
    fetched = venue.fetch_order(order.symbol, order.client_order_id)  # Binance: fees from myTrades
    assert fetched is not None and report.state is OrderState.FILLED
    rate = venue.rules(order.symbol).buy_fee_in_base
    if venue_name == "binance":  # commissionAsset BTC: the coin bought
        assert placed["fee_asset"] == "BTC"
        assert report.fee_base == fetched.fee_base == Decimal(placed["fee"]) > 0
        assert rate == Decimal("0.001")  # buys are sized to make up for it
    else:  # Upbit takes its fee in KRW on top of the price
        assert placed["fee_asset"] == "KRW"
        assert report.fee_base == fetched.fee_base == 0 and rate == 0
    venue.close()


def test_with_bnb_fees_configured_buys_are_not_grossed_up_and_fills_are_booked_as_reported(
    sim_server: SimServer, sim: SimControl
) -> None:
    venue, key = venue_on(sim_server, "binance", buy_fee_in="other")
    assert venue.rules("BTC/USDT").buy_fee_in_base == 0
    order = marketable_buy(venue, "binance", "cbnb-B")
    report = venue.submit(order)
    (placed,) = sim.orders(client_id=order.client_order_id, api_key=key)
    # This simulated account pays in BTC after all: what the venue reports is what is booked.
    assert report.fee_base == Decimal(placed["fee"]) > 0
    venue.close()
