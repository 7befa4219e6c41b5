"""The one net spread definition (domain.spread): what the signal engine tests each venue pair's top
of book against and what the benchmark's bare baseline maximises."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbitrage.domain.spread import taker_net_spread_pct, taker_rates

prices = st.floats(1e-3, 1e9, allow_nan=False, allow_infinity=False)
rates = st.floats(1e-4, 1e4, allow_nan=False, allow_infinity=False)
fees = st.floats(0.0, 1.0)


@pytest.mark.parametrize(
    ("ask", "buy_fx", "buy_fee", "bid", "sell_fx", "sell_fee", "expected"),
    [
        (100.0, 1.0, 0.0, 103.0, 1.0, 0.0, 3.0),  # no fees, one currency: the gross spread
        (100.0, 1.0, 1.0, 103.0, 1.0, 0.0, 2.0),  # the buy's fee: (103 - 101) / 100
        (100.0, 1.0, 0.0, 103.0, 1.0, 1.0, 1.97),  # the sell's fee: (101.97 - 100) / 100
        (100.0, 1380.0, 0.0, 140_000.0, 1.0, 0.0, (140_000 - 138_000) / 138_000 * 100),  # FX
    ],
)
def test_net_spread_after_fees_and_fx(
    ask: float, buy_fx: float, buy_fee: float, bid: float, sell_fx: float, sell_fee: float, expected: float
) -> None:
    buy_cost, _ = taker_rates(buy_fx, buy_fee)
    _, sell_proceeds = taker_rates(sell_fx, sell_fee)
    assert taker_net_spread_pct(ask, buy_fx, buy_cost, bid, sell_proceeds) == pytest.approx(expected)


@given(ask=prices, bid=prices, fx=rates, fee=fees, more=st.floats(0.01, 1.0))
def test_fees_never_widen_the_spread(ask: float, bid: float, fx: float, fee: float, more: float) -> None:
    low_cost, low_proceeds = taker_rates(fx, fee)
    high_cost, high_proceeds = taker_rates(fx, fee + more)
    low = taker_net_spread_pct(ask, fx, low_cost, bid, low_proceeds)
    assert taker_net_spread_pct(ask, fx, high_cost, bid, low_proceeds) <= low
    assert taker_net_spread_pct(ask, fx, low_cost, bid, high_proceeds) <= low
