"""Pure parts of the simulator: market rules, ladders, book diffs, matching and settlement, client ids."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbitrage.domain.money import upbit_krw_tick
from arbitrage.sim.books import DepthChange, SimBook
from arbitrage.sim.exchange import ClientIdScope, OrderRefused, Refusal, SimVenue
from arbitrage.sim.market import LadderShape, SimMarket, binance_market, build_ladder, upbit_market
from arbitrage.sim.matching import FeeModel, OrderStatus
from arbitrage.sim.urls import sim_options, sim_urls

D = Decimal
BINANCE_FEES = FeeModel(D("0.001"), buy_fee_in_base=True, reserve_fee_on_buy=False)
UPBIT_FEES = FeeModel(D("0.0005"), buy_fee_in_base=False, reserve_fee_on_buy=True)


def make_venue(name: str = "binance", scope: ClientIdScope = ClientIdScope.OPEN) -> SimVenue:
    market = binance_market("BTC", 100_000.0) if name == "binance" else upbit_market("BTC")
    fees = BINANCE_FEES if name == "binance" else UPBIT_FEES
    quote = "USDT" if name == "binance" else "KRW"
    start = {quote: D(1_000_000_000), "BTC": D(10)}
    return SimVenue(name, [market], fees, start, scope, name == "upbit", random.Random(1), lambda v, c: None)


def set_book(venue: SimVenue, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> SimBook:
    book = next(iter(venue.books.values()))
    book.replace([(D(p), D(q)) for p, q in bids], [(D(p), D(q)) for p, q in asks], 1)
    return book


@pytest.mark.parametrize(
    ("price", "tick", "step"),
    [(100_000.0, "0.01", "0.00001"), (3_500.0, "0.01", "0.0001"), (2.5, "0.0001", "0.1")],
)
def test_binance_market_rules(price: float, tick: str, step: str) -> None:
    market = binance_market("X", price)
    assert market.tick_at(D(price)) == D(tick)
    assert market.step == D(step)
    assert market.min_notional == 5


@pytest.mark.parametrize(
    ("price", "on_tick"), [("140001000", True), ("140000500", False), ("1395", True), ("1395.5", False)]
)
def test_upbit_market_uses_the_krw_tick_table(price: str, on_tick: bool) -> None:
    assert upbit_market("BTC").on_tick(D(price)) is on_tick


@pytest.mark.parametrize(
    ("market", "mid"), [(binance_market("BTC", 100_000.0), 100_000.0), (upbit_market("BTC"), 140_000_000.0)]
)
def test_ladder_is_on_tick_sorted_and_not_crossed(market: SimMarket, mid: float) -> None:
    bids, asks = build_ladder(market, mid, LadderShape(levels=15), 1.0, random.Random(3))
    assert len(bids) == len(asks) == 15
    assert bids[0][0] < asks[0][0]
    assert [p for p, _ in bids] == sorted({p for p, _ in bids}, reverse=True)
    assert [p for p, _ in asks] == sorted({p for p, _ in asks})
    for price, qty in bids + asks:
        assert market.on_tick(price) and market.on_step(qty)


levels = st.dictionaries(st.integers(1, 60), st.integers(1, 9), max_size=12)


@given(levels, levels, levels, levels)
def test_a_depth_change_turns_the_old_book_into_the_new(
    ob: dict[int, int], oa: dict[int, int], nb: dict[int, int], na: dict[int, int]
) -> None:
    changes: list[DepthChange] = []
    book = SimBook(binance_market("BTC", 100_000.0), 100, changes.append)

    def side(d: dict[int, int]) -> list[tuple[Decimal, Decimal]]:
        return [(D(p), D(q)) for p, q in sorted(d.items())]

    book.replace(side(ob)[::-1], side(oa), 1)
    changes.clear()
    before = book.update_id
    book.replace(side(nb)[::-1], side(na), 2)
    if (ob, oa) == (nb, na):
        assert changes == [] and book.update_id == before
        return
    (change,) = changes
    assert change.first_id == change.last_id == before + 1 == book.update_id
    for old, new, diff in ((ob, nb, change.bids), (oa, na, change.asks)):
        applied = {D(p): D(q) for p, q in old.items()}
        for price, qty in diff:
            if qty == 0:
                del applied[price]
            else:
                applied[price] = qty
        assert applied == {D(p): D(q) for p, q in new.items()}


def test_take_consumes_levels_within_the_limit_only() -> None:
    venue = make_venue()
    book = set_book(venue, [("99", "1")], [("100", "0.5"), ("101", "1"), ("103", "1")])
    assert book.take("buy", D("101"), D("1"), 2) == [(D("100"), D("0.5")), (D("101"), D("0.5"))]
    assert book.asks == [(D("101"), D("0.5")), (D("103"), D("1"))]
    assert book.available("buy", D("102")) == D("0.5")
    assert book.take("sell", D("100"), D("1"), 3) == []


def test_binance_ioc_partial_fill_settles_and_expires() -> None:
    venue = make_venue()
    set_book(venue, [("99000", "1")], [("100000", "0.3"), ("100100", "0.2"), ("101000", "5")])
    order = venue.accept("k", "BTCUSDT", "buy", D("100100"), D("1"), "IOC", "c1", 5)
    venue.execute(order, 5)
    wallet = venue.wallet("k")
    assert order.status is OrderStatus.EXPIRED
    assert order.filled == D("0.5")
    assert order.cost == D("0.3") * 100000 + D("0.2") * 100100
    assert order.fee == D("0.0005") and order.fee_asset == "BTC"
    assert wallet.locked["USDT"] == 0
    assert wallet.free["USDT"] == D(1_000_000_000) - order.cost
    assert wallet.free["BTC"] == D(10) + D("0.5") - D("0.0005")


def test_upbit_bid_reserves_the_fee_and_charges_it_in_krw() -> None:
    venue = make_venue("upbit", ClientIdScope.FOREVER)
    set_book(venue, [("139000000", "1")], [("140000000", "0.01")])
    order = venue.accept("k", "KRW-BTC", "buy", D("140000000"), D("0.02"), "GTC", "i1", 5)
    assert venue.wallet("k").locked["KRW"] == D("140000000") * D("0.02") * D("1.0005")
    venue.execute(order, 5)
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert order.fee == D("700") and order.fee_asset == "KRW"
    venue.cancel(order, 6)
    wallet = venue.wallet("k")
    assert wallet.locked["KRW"] == 0
    assert wallet.free["KRW"] == D(1_000_000_000) - D("1400000") - D("700")
    assert wallet.free["BTC"] == D("10.01")


def test_fok_fills_all_or_nothing() -> None:
    venue = make_venue()
    set_book(venue, [("99000", "1")], [("100000", "0.3")])
    order = venue.accept("k", "BTCUSDT", "buy", D("100000"), D("0.5"), "FOK", None, 5)
    venue.execute(order, 5)
    assert order.status is OrderStatus.EXPIRED and order.filled == 0
    assert venue.wallet("k").locked["USDT"] == 0


@pytest.mark.parametrize(
    ("scope", "refused_then_reused"),
    [(ClientIdScope.OPEN, True), (ClientIdScope.FOREVER, False)],
)
def test_client_id_scopes(scope: ClientIdScope, refused_then_reused: bool) -> None:
    venue = make_venue("binance", scope)
    set_book(venue, [("99000", "1")], [("100000", "1")])
    with pytest.raises(OrderRefused) as refused:
        venue.accept("k", "BTCUSDT", "buy", D("100000"), D("100000"), "IOC", "same", 1)
    assert refused.value.reason is Refusal.INSUFFICIENT_FUNDS
    if refused_then_reused:
        order = venue.accept("k", "BTCUSDT", "buy", D("90000"), D("0.1"), "GTC", "same", 2)
        with pytest.raises(OrderRefused, match="duplicate"):
            venue.accept("k", "BTCUSDT", "buy", D("90000"), D("0.1"), "GTC", "same", 3)
        venue.cancel(order, 4)
        assert (
            venue.accept("k", "BTCUSDT", "buy", D("90000"), D("0.1"), "GTC", "same", 5).order_id
            != order.order_id
        )
        assert venue.find("k", client_id="same") is not order
    else:
        with pytest.raises(OrderRefused, match="duplicate"):
            venue.accept("k", "BTCUSDT", "buy", D("90000"), D("0.1"), "GTC", "same", 2)
    assert venue.accept("other-key", "BTCUSDT", "buy", D("90000"), D("0.1"), "GTC", "same", 6)


orders = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.integers(95, 105),
        st.integers(1, 300),
        st.sampled_from(["IOC", "GTC"]),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(orders, st.sampled_from(["binance", "upbit"]))
def test_settlement_conserves_funds(sequence: list[tuple[str, int, int, str]], name: str) -> None:
    venue = make_venue(name, ClientIdScope.FOREVER)
    quote = "USDT" if name == "binance" else "KRW"
    scale = D(1000) if name == "binance" else D(1_000_000)  # prices on each venue's tick
    set_book(
        venue,
        [(str(99 * scale), "5"), (str(97 * scale), "5")],
        [(str(101 * scale), "5"), (str(103 * scale), "5")],
    )
    ids = itertools.count()
    for side, price, centi, tif in sequence:
        try:
            order = venue.accept(
                "k", next(iter(venue.markets)), side, price * scale, D(centi) / 100, tif, str(next(ids)), 1
            )
        except OrderRefused:
            continue
        venue.execute(order, 1)
    wallet = venue.wallet("k")
    assert all(v >= 0 for v in wallet.free.values())
    for order in venue.orders.values():
        if order.is_open:
            venue.cancel(order, 2)
    assert all(v == 0 for v in wallet.locked.values())
    fills = [(o, f) for o in venue.orders.values() for f in o.fills]
    sign = {"buy": 1, "sell": -1}
    base_fees = sum((f.fee for _, f in fills if f.fee_asset == "BTC"), D(0))
    quote_fees = sum((f.fee for _, f in fills if f.fee_asset == quote), D(0))
    assert wallet.free["BTC"] - 10 == sum((sign[o.side] * f.qty for o, f in fills), D(0)) - base_fees
    assert (
        wallet.free[quote] - D(1_000_000_000)
        == -sum((sign[o.side] * f.quote_qty for o, f in fills), D(0)) - quote_fees
    )


def test_sim_urls_point_every_used_api_at_the_sim() -> None:
    binance = sim_urls("binance", "http://127.0.0.1:9000/")
    assert binance["api"]["public"] == binance["api"]["private"] == "http://127.0.0.1:9000/binance/api/v3"
    assert binance["api"]["ws"]["spot"] == "ws://127.0.0.1:9000/binance/stream/ws"
    upbit = sim_urls("upbit", "http://127.0.0.1:9000")
    assert upbit["api"] == {
        "public": "http://127.0.0.1:9000/upbit",
        "private": "http://127.0.0.1:9000/upbit",
        "ws": "ws://127.0.0.1:9000/upbit/websocket/v1",
    }
    assert sim_options("binance")["fetchMarkets"] == {"types": ["spot"]}
    with pytest.raises(ValueError, match="kraken"):
        sim_urls("kraken", "http://127.0.0.1:9000")


def test_krw_tick_table_is_the_domain_one() -> None:
    assert upbit_market("BTC").tick_at(D(140_000_000)) == upbit_krw_tick(D(140_000_000)) == D(1000)
