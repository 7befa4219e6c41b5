"""A fee taken from the coin bought (Binance): how much to buy so that enough arrives, and the
coin an order really moved."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbitrage.domain.money import MarketRules
from arbitrage.domain.orders import Order, OrderFilled, OrderReport, OrderState, apply, events_from_report

D = Decimal
BINANCE_BTC = MarketRules(D("0.01"), D("0.00001"), D(5), buy_fee_in_base=D("0.001"))


@pytest.mark.parametrize(
    ("rules", "net", "buy"),
    [
        # 0.01 / 0.999 = 0.0100100..., up to the 0.00001 step: 0.01002 delivers 0.01000998
        (BINANCE_BTC, "0.01", "0.01002"),
        # 0.999 / 0.999 = 1 exactly: no extra step
        (MarketRules(D("0.01"), D("0.001"), buy_fee_in_base=D("0.001")), "0.999", "1.000"),
        # the fee paid in the quote or in BNB: nothing changes
        (MarketRules(D("0.01"), D("0.00001")), "0.01", "0.01"),
        (BINANCE_BTC, "0", "0"),
    ],
)
def test_a_buy_is_grossed_up_by_a_fee_taken_from_the_coin(rules: MarketRules, net: str, buy: str) -> None:
    assert rules.buy_qty_for(D(net)) == D(buy)
    assert rules.received(D(buy)) >= D(net)


@given(
    net=st.decimals(min_value=D("0.00001"), max_value=D("50"), places=8),
    step_exp=st.integers(min_value=-8, max_value=0),
    rate_bps=st.integers(min_value=1, max_value=100),
)
def test_the_gross_buy_is_the_least_step_multiple_that_delivers_the_net(
    net: Decimal, step_exp: int, rate_bps: int
) -> None:
    step = D(1).scaleb(step_exp)
    rules = MarketRules(D("0.01"), step, buy_fee_in_base=D(rate_bps) / 10_000)
    buy = rules.buy_qty_for(net)
    assert buy % step == 0
    assert rules.received(buy) >= net  # never short
    assert rules.received(buy - step) < net  # and no more than it takes


def order(side: str) -> Order:
    return Order("c-B", "binance", "BTC/USDT", side, D("0.01002"), D("100000"), state=OrderState.SUBMITTED)


def test_the_coin_a_buy_moved_is_its_fill_less_the_fee_taken_in_the_coin() -> None:
    bought = apply(order("buy"), OrderFilled(D("0.01002"), D("100000"), D("1.002"), fee_base=D("0.00001002")))
    assert (bought.filled_qty, bought.fee_base, bought.net_qty) == (
        D("0.01002"),
        D("0.00001002"),
        D("0.01000998"),
    )
    assert bought.fee == D("1.002")  # the fee's quote value stays for the PnL
    sold = apply(order("sell"), OrderFilled(D("0.01"), D("100000"), D("1")))
    assert sold.net_qty == D("0.01")


def test_a_report_seen_twice_adds_the_coin_fee_once() -> None:
    report = OrderReport("c-B", OrderState.PARTIAL, D("0.005"), D("100000"), D("0.5"), fee_base=D("0.000005"))
    first = order("buy")
    for event in events_from_report(first, report):
        first = apply(first, event)
    assert first.fee_base == D("0.000005")
    assert events_from_report(first, report) == []  # nothing new
    done = OrderReport(
        "c-B", OrderState.FILLED, D("0.01002"), D("100000"), D("1.002"), fee_base=D("0.00001002")
    )
    for event in events_from_report(first, done):
        first = apply(first, event)
    assert (first.state, first.fee_base, first.net_qty) == (
        OrderState.FILLED,
        D("0.00001002"),
        D("0.01000998"),
    )
