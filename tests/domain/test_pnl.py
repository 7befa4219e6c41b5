"""Spread and PnL arithmetic: worked examples and properties of the reverse trade."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from arbitrage.domain.book import MarketSnapshot
from arbitrage.domain.money import dec
from arbitrage.domain.pnl import (
    entry_pnl,
    exposure,
    fx_spread_pct,
    mark_price,
    net_spread_pct,
    reverse_trade,
    sweep,
    total_exposure,
    unrealized_pnl,
)
from arbitrage.domain.positions import PairPosition
from arbitrage.engines.signal import find_opportunity
from tests.engines.factories import FEES, NOW, USDT_KRW, book, pair_position, snapshot

D = Decimal


@pytest.mark.parametrize(
    ("buy", "buy_fx", "sell", "sell_fx", "expected"),
    [
        (100_000.0, 1400.0, 141_000_000.0, 1.0, 1e6 / 140e6 * 100),
        (141_000_000.0, 1.0, 100_000.0, 1400.0, -1e6 / 141e6 * 100),
        (100.0, 1.0, 100.0, 1.0, 0.0),
    ],
)
def test_fx_spread_pct(buy, buy_fx, sell, sell_fx, expected):
    assert fx_spread_pct(buy, buy_fx, sell, sell_fx) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("cost", "proceeds", "fees", "expected"),
    [(100.0, 101.0, 0.5, 0.5), (100.0, 99.0, 0.0, -1.0), (0.0, 5.0, 0.0, 0.0)],
)
def test_net_spread_pct(cost, proceeds, fees, expected):
    assert net_spread_pct(cost, proceeds, fees) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("levels", "qty", "notional", "worst", "complete"),
    [
        (((10.0, 1.0), (11.0, 1.0)), 1.5, 15.5, 11.0, True),
        (((10.0, 1.0),), 1.0, 10.0, 10.0, True),
        # shallower than asked: the rest is valued at the deepest level
        (((10.0, 1.0), (11.0, 1.0)), 3.0, 32.0, 11.0, False),
    ],
)
def test_sweep(levels, qty, notional, worst, complete):
    s = sweep(levels, qty)
    assert s is not None
    assert (s.qty, s.notional, s.worst_price, s.complete) == (qty, pytest.approx(notional), worst, complete)
    assert s.vwap == pytest.approx(notional / qty)


def test_sweep_of_nothing():
    assert sweep((), 1.0) is None
    assert sweep(((10.0, 1.0),), 0.0) is None


class _TopOnlySide(tuple):  # type: ignore[type-arg]
    """A side whose levels past the top must not be made (a lazily built side's promise)."""

    def __iter__(self) -> Any:
        raise AssertionError("levels past the top were made")


def test_a_top_that_covers_the_quantity_is_all_a_sweep_reads():
    s = sweep(_TopOnlySide(((10.0, 2.0), (11.0, 5.0))), 1.5)
    assert s is not None and (s.qty, s.notional, s.worst_price, s.complete) == (1.5, 15.0, 10.0, True)


@given(
    st.lists(st.tuples(st.floats(0.01, 1e6), st.floats(1e-6, 1e3)), min_size=1, max_size=5),
    st.floats(1e-6, 2e3),
)
def test_the_top_alone_values_as_the_walk_does(levels: list[tuple[float, float]], qty: float) -> None:
    """Reading the top first changes nothing: the same sweep as walking from it, to the bit."""
    deeper = ((levels[0][0], 0.0), *levels)  # an empty first level: sweep walks from the start
    walked, read = sweep(deeper, qty), sweep(tuple(levels), qty)
    assert walked is not None and read is not None
    assert (read.qty, read.notional, read.worst_price, read.complete) == (
        walked.qty, walked.notional, walked.worst_price, walked.complete,
    )  # fmt: skip


def market(binance_bid: float = 100_000.0, upbit_ask: float = 141_200_000.0, depth: float = 1.0) -> Any:
    return snapshot(
        [
            book("binance", "BTC/USDT", [(binance_bid, depth)], [(binance_bid + 100, depth)]),
            book("upbit", "BTC/KRW", [(upbit_ask - 100_000, depth)], [(upbit_ask, depth)]),
        ]
    )


def test_reverse_trade_numbers():
    trade = reverse_trade(pair_position(), market(), FEES)
    assert trade is not None
    assert (trade.qty, trade.sell_vwap, trade.buy_vwap, trade.sell_fx, trade.buy_fx) == (
        0.01,
        100_000.0,
        141_200_000.0,
        USDT_KRW,
        1.0,
    )
    assert trade.proceeds == pytest.approx(1_400_000.0)
    assert trade.cost == pytest.approx(1_412_000.0)
    assert trade.fees == pytest.approx(1_400.0 + 706.0)
    assert trade.pnl == pytest.approx(-14_106.0)
    assert trade.net_spread_pct == pytest.approx(-14_106.0 / 1_412_000.0 * 100)
    assert trade.complete
    assert entry_pnl(pair_position()) == pytest.approx(7_895.0)
    assert unrealized_pnl(pair_position(), market(), FEES) == pytest.approx(7_895.0 - 14_106.0)


def test_shallow_books_are_marked_but_flagged():
    trade = reverse_trade(pair_position(), market(depth=0.004), FEES)
    assert trade is not None and not trade.complete
    assert trade.proceeds == pytest.approx(1_400_000.0)


@pytest.mark.parametrize(
    ("snap", "fees"),
    [
        (snapshot([book("binance", "BTC/USDT", [(100_000.0, 1.0)], [])]), FEES),
        (MarketSnapshot(ts=NOW, books=market().books, fx={"KRW": 1.0}), FEES),  # no USDT rate
        (market(), {"binance": 0.1}),
        (
            snapshot(
                [book("binance", "BTC/USDT", [], [(1.0, 1.0)]), book("upbit", "BTC/KRW", [], [(1.0, 1.0)])]
            ),
            FEES,
        ),
    ],
)
def test_reverse_trade_cannot_be_valued(snap, fees):
    assert reverse_trade(pair_position(), snap, fees) is None
    assert unrealized_pnl(pair_position(), snap, fees) is None


def test_exposure_marks_to_market_and_falls_back_to_cost():
    pos = pair_position()
    assert exposure(pos, market()) == pytest.approx(0.01 * 100_050 * USDT_KRW)
    assert exposure(pos, snapshot([])) == pytest.approx(1_400_000.0)
    assert exposure(pos.close_without_trade("INVENTORY", NOW), market()) == 0.0
    assert total_exposure([pos, pair_position("P2", qty="0.02")], market()) == pytest.approx(
        0.03 * 100_050 * USDT_KRW
    )


def test_mark_price():
    assert mark_price(book("v", "BTC/KRW", [(99.0, 1.0)], [(101.0, 1.0)])) == 100.0
    assert mark_price(book("v", "BTC/KRW", [(99.0, 1.0)], [])) == 99.0
    assert mark_price(book("v", "BTC/KRW", [], [])) is None


# Properties ---------------------------------------------------------------------------------


@st.composite
def two_sided(draw, mid, tick_pct=0.002):
    """A non-crossed book around `mid`: 1-4 levels each side."""
    spread = draw(st.floats(0.0, 0.01)) * mid
    bids, asks = [], []
    bid, ask = mid - spread / 2, mid + spread / 2
    for _ in range(draw(st.integers(1, 4))):
        bids.append((bid, draw(st.floats(0.001, 0.3))))
        bid -= draw(st.floats(0.0, tick_pct)) * mid
    for _ in range(draw(st.integers(1, 4))):
        asks.append((ask, draw(st.floats(0.001, 0.3))))
        ask += draw(st.floats(0.0, tick_pct)) * mid
    return bids, asks


fee = st.floats(0.0, 0.5)


def position_from(opp: Any, fees: dict[str, float]) -> PairPosition:
    qty = dec(opp.qty)
    cost = qty * dec(opp.buy_vwap) * dec(opp.buy_fx)
    proceeds = qty * dec(opp.sell_vwap) * dec(opp.sell_fx)
    paid = cost * dec(fees["binance"]) / 100 + proceeds * dec(fees["upbit"]) / 100
    return PairPosition(
        "P1",
        "BTC",
        "binance",
        "upbit",
        "BTC/USDT",
        "BTC/KRW",
        qty,
        qty,
        qty,
        cost,
        proceeds,
        paid,
        opp.net_spread_pct,
        NOW,
    )


@settings(max_examples=200, deadline=None)
@given(
    binance=two_sided(100_000.0),
    upbit=two_sided(141_000_000.0),
    fees=st.fixed_dictionaries({"binance": fee, "upbit": fee}),
)
def test_entry_then_immediate_reverse_never_profits(binance, upbit, fees):
    """Entering at the books and closing at the same books loses both bid-ask spreads and fees."""
    snap = snapshot([book("binance", "BTC/USDT", *binance), book("upbit", "BTC/KRW", *upbit)])
    opp, _ = find_opportunity(
        "BTC",
        snap.books[("binance", "BTC")],
        snap.books[("upbit", "BTC")],
        USDT_KRW,
        1.0,
        fees["binance"],
        fees["upbit"],
        min_spread_pct=-100.0,
        max_notional=1e12,
        min_notional=0.0,
        buffer_pct=0.0,
        ts=NOW,
    )
    assume(opp is not None)
    assert opp is not None
    position = position_from(opp, fees)
    pnl = unrealized_pnl(position, snap, fees)
    assert pnl is not None
    assert pnl <= 1e-6 * float(position.entry_cost)
    # the opportunity's net spread is exactly what the entry books per unit of cost
    assert entry_pnl(position) / float(position.entry_cost) * 100 == pytest.approx(
        opp.net_spread_pct, abs=1e-9
    )


@settings(max_examples=200, deadline=None)
@given(
    binance=two_sided(100_000.0),
    upbit=two_sided(141_000_000.0),
    qty=st.decimals("0.0001", "2", places=4),
    low=st.fixed_dictionaries({"binance": fee, "upbit": fee}),
    extra=st.floats(0.0, 0.5),
)
def test_fees_always_reduce_pnl(binance, upbit, qty, low, extra):
    snap = snapshot([book("binance", "BTC/USDT", *binance), book("upbit", "BTC/KRW", *upbit)])
    position = pair_position(qty=str(qty))
    for venue in ("binance", "upbit"):
        high = {**low, venue: low[venue] + extra}
        cheap, dear = reverse_trade(position, snap, low), reverse_trade(position, snap, high)
        assert cheap is not None and dear is not None
        assert dear.pnl <= cheap.pnl + 1e-9
        assert dear.net_spread_pct <= cheap.net_spread_pct + 1e-12
        assert dear.fees >= cheap.fees


@settings(max_examples=200, deadline=None)
@given(
    binance=two_sided(100_000.0),
    upbit=two_sided(141_000_000.0),
    qty=st.decimals("0.0001", "2", places=4),
    entry_premium=st.floats(-0.02, 0.03),
)
def test_unrealized_equals_realized_after_close_with_the_same_numbers(binance, upbit, qty, entry_premium):
    snap = snapshot([book("binance", "BTC/USDT", *binance), book("upbit", "BTC/KRW", *upbit)])
    position = pair_position(qty=str(qty), sell_price=140_000_000.0 * (1 + entry_premium))
    unrealized = unrealized_pnl(position, snap, FEES)
    trade = reverse_trade(position, snap, FEES)
    assert unrealized is not None and trade is not None
    closed = position.close_part(
        position.qty,
        dec(trade.proceeds),
        dec(trade.cost),
        dec(trade.fees),
        trade.net_spread_pct,
        "TAKE_PROFIT",
        NOW,
    )
    assert float(closed.realized_pnl) == pytest.approx(unrealized, rel=1e-9, abs=1e-6)
