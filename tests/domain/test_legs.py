"""Leg accounting: what a leg's fills are split into adds back up to its cash flow; residual netting
conserves value; fees always cost.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from arbitrage.domain.legs import LegTally, ResidualBook
from arbitrage.domain.money import ZERO
from arbitrage.domain.orders import Order, OrderState

D = Decimal
# Decimal divisions carry 28 significant digits; sums of a few of them agree far below a booking unit.
EXACT = D("1e-12")


def fill(side: str, qty: Decimal, price: Decimal, fee: Decimal = ZERO, n: int = 1) -> Order:
    """An IOC order as the venue left it: filled `qty` (possibly 0) at `price`."""
    return Order(
        client_order_id=f"arbE0000001-{side[0].upper()}{n}",
        venue="binance",
        symbol="BTC/USDT",
        side=side,
        qty=max(qty, D("0.0001")),
        price=price,
        state=OrderState.FILLED if qty > 0 else OrderState.EXPIRED,
        filled_qty=qty,
        avg_fill_price=price if qty > 0 else D(0),
        fee=fee,
    )


def cash_flow(tally: LegTally) -> Decimal:
    """Everything the leg's fills paid and received, accounting currency (+ received)."""
    sign = 1 if tally.side == "sell" else -1
    return (sign * (tally.fwd_notional - tally.back_notional) - tally.fwd_fee - tally.back_fee) * tally.fx


qtys = st.decimals(min_value=D("0.0001"), max_value=D(2), places=4)
prices = st.decimals(min_value=D(1000), max_value=D(200_000), places=2)
fee_rates = st.decimals(min_value=D(0), max_value=D("0.002"), places=5)


@st.composite
def tallies(draw: st.DrawFn) -> LegTally:
    """A leg with forward fills (the entry and its retries) and unwinds that never exceed them."""
    side = draw(st.sampled_from(["buy", "sell"]))
    back = "sell" if side == "buy" else "buy"
    fx = draw(st.decimals(min_value=D(1), max_value=D(1500), places=2))
    tally = LegTally("binance", "BTC/USDT", side, fx, draw(prices))
    rate = draw(fee_rates)
    for i, (qty, price) in enumerate(draw(st.lists(st.tuples(qtys, prices), min_size=1, max_size=4))):
        tally.add(fill(side, qty, price, (qty * price * rate).quantize(D("1e-8")), i))
    for i, (share, price) in enumerate(
        draw(st.lists(st.tuples(st.decimals(min_value=D(0), max_value=D(1), places=3), prices), max_size=3))
    ):
        qty = (tally.net * share).quantize(D("1e-4"), rounding="ROUND_DOWN")
        tally.add(fill(back, qty, price, (qty * price * rate).quantize(D("1e-8")), 10 + i))
    return tally


@settings(max_examples=300, deadline=None)
@given(tally=tallies(), hedged_share=st.decimals(min_value=D(0), max_value=D(1), places=3))
def test_hedged_part_unwinds_and_leftover_add_up_to_the_cash_flow(
    tally: LegTally, hedged_share: Decimal
) -> None:
    hedged = tally.net * hedged_share
    sign = 1 if tally.side == "sell" else -1
    hedged_value = sign * tally.value(hedged) - tally.fee_share(hedged)  # what the position books
    _, leftover_value = tally.leftover(hedged)
    total = hedged_value + tally.unwind_result() + leftover_value
    assert abs(total - cash_flow(tally)) <= EXACT * max(D(1), abs(cash_flow(tally)))
    qty, _ = tally.leftover(hedged)
    assert abs(qty) == tally.net - hedged
    assert (qty > 0) == (tally.side == "buy" and tally.net > hedged)


@settings(max_examples=200, deadline=None)
@given(tally=tallies(), extra=st.decimals(min_value=D("0.01"), max_value=D(100), places=2))
def test_fees_always_cost(tally: LegTally, extra: Decimal) -> None:
    assume(tally.back_qty > 0)
    dearer = LegTally(tally.venue, tally.symbol, tally.side, tally.fx, tally.planned_price)
    for order in tally.orders:
        dearer.add(replace(order, fee=order.fee + extra))
    assert dearer.unwind_result() < tally.unwind_result()
    assert dearer.fee_share(tally.fwd_qty) > tally.fee_share(tally.fwd_qty)
    assert cash_flow(dearer) < cash_flow(tally)


def test_leg_table() -> None:
    tally = LegTally("binance", "BTC/USDT", "buy", D(1400), D(100))
    tally.add(fill("buy", D(1), D(100), D("0.1")))
    tally.add(fill("buy", D(0), D(100)))  # an expired retry adds nothing
    tally.add(fill("sell", D("0.4"), D(99), D("0.04"), 2))  # unwound at a loss
    assert (tally.fwd_qty, tally.back_qty, tally.net) == (D(1), D("0.4"), D("0.6"))
    # (99 - 100) * 0.4 - 0.04 fee of the unwind - 0.04 share of the entry fee, at 1400
    assert tally.unwind_result() == D("-672.0")
    assert tally.leftover(D("0.5")) == (D("0.1"), D("-14014.0"))
    assert tally.leftover(D("0.6")) == (D(0), D(0))
    assert len(tally.orders) == 3


# ResidualBook ----------------------------------------------------------------------------

signed_qtys = st.decimals(min_value=D(-2), max_value=D(2), places=4)
values = st.decimals(min_value=D(-300_000_000), max_value=D(300_000_000), places=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["upbit", "binance"]), signed_qtys, values), max_size=12))
def test_netting_conserves_quantity_and_value(adds: list[tuple[str, Decimal, Decimal]]) -> None:
    book = ResidualBook()
    realized = D(0)
    for venue, qty, value in adds:
        realized += book.add(venue, "BTC", qty, value)
        assert all(r.qty != 0 for r in book.items.values())  # a netted-out item leaves the book
    remaining = sum((r.value for r in book.items.values()), D(0))
    total = sum((v for _, _, v in adds), D(0))
    assert abs(realized + remaining - total) <= EXACT * max(D(1), abs(total))
    for venue in ("upbit", "binance"):
        added = sum((q for v, q, _ in adds if v == venue), D(0))
        assert book.quantities().get((venue, "BTC"), D(0)) == added
    assert book.net("BTC") == sum((q for _, q, _ in adds), D(0))
    assert book.net("ETH") == 0


@settings(max_examples=200, deadline=None)
@given(
    qty=st.decimals(min_value=D("0.0001"), max_value=D(2), places=4),
    buy=prices,
    sell=prices,
    fee=st.decimals(min_value=D("0.00000001"), max_value=D(1000), places=8),
)
def test_netting_a_bought_residual_against_a_sold_one_realizes_the_difference(
    qty: Decimal, buy: Decimal, sell: Decimal, fee: Decimal
) -> None:
    plain, dear = ResidualBook(), ResidualBook()
    for book, f in ((plain, D(0)), (dear, fee)):
        book.add("binance", "BTC", qty, -qty * buy - f)
    got = plain.add("binance", "BTC", -qty, qty * sell)
    got_dear = dear.add("binance", "BTC", -qty, qty * sell)
    assert got == qty * (sell - buy)
    assert got_dear == got - fee  # the fee costs exactly itself
    assert plain.items == {} and dear.items == {}


@pytest.mark.parametrize(
    ("adds", "realized", "left"),
    [
        ([(D("0.5"), D(-50)), (D("0.5"), D(-60))], D(0), (D(1), D(-110))),
        ([(D(1), D(-100)), (D("-0.25"), D(30))], D(5), (D("0.75"), D(-75))),  # 30 - 25
        ([(D("0.2"), D(-20)), (D("-0.5"), D(55))], D(2), (D("-0.3"), D(33))),  # flips short
        ([(D(0), D(-7))], D(-7), None),  # a value without quantity is realized at once
    ],
)
def test_residual_table(
    adds: list[tuple[Decimal, Decimal]], realized: Decimal, left: tuple[Decimal, Decimal] | None
) -> None:
    book = ResidualBook()
    got = sum((book.add("upbit", "ETH", q, v) for q, v in adds), D(0))
    assert got == realized
    item = book.items.get(("upbit", "ETH"))
    assert (None if item is None else (item.qty, item.value)) == left


@settings(max_examples=200, deadline=None)
@given(
    qty=qtys, price=prices, rate=fee_rates, hedged_share=st.decimals(min_value=D(0), max_value=D(1), places=3)
)
def test_a_buy_whose_fee_was_taken_from_the_coin_counts_the_coin_that_arrived(
    qty: Decimal, price: Decimal, rate: Decimal, hedged_share: Decimal
) -> None:
    fee_base = (qty * rate).quantize(D("1e-8"))
    # The venue took its fee from the coin: the cash paid is the fill alone, the fee's quote value
    # is reported alongside (at the fill price, as ccxt_reports converts it).
    order = replace(fill("buy", qty, price, fee_base * price), fee_base=fee_base)
    tally = LegTally("binance", "BTC/USDT", "buy", D(1400), price)
    tally.add(order)
    assert tally.net == qty - fee_base  # what arrived, not what filled
    paid = qty * price * D(1400)
    hedged = tally.net * hedged_share
    extra_qty, extra_value = tally.leftover(hedged)
    assert extra_qty == tally.net - hedged
    # The position's cost and fees and the leftover's value are the cash that was really paid.
    total = tally.value(hedged) + tally.fee_share(hedged) - extra_value
    assert abs(total - paid) <= EXACT * paid
