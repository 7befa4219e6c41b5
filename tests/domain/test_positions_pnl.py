"""Pair positions closed in parts: what is realized adds up to the cash flows, fees always cost."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbitrage.domain.money import BOOKING_QUANTUM, booked
from arbitrage.domain.positions import PairPosition, PositionState

D = Decimal


ONE, COST, PROCEEDS, FEES = D(1), D(100_000), D(101_000), D(150)


def position(
    qty: Decimal = ONE, cost: Decimal = COST, proceeds: Decimal = PROCEEDS, fees: Decimal = FEES
) -> PairPosition:
    return PairPosition(
        position_id="arbE0000001",
        asset="BTC",
        buy_venue="binance",
        sell_venue="upbit",
        buy_symbol="BTC/USDT",
        sell_symbol="BTC/KRW",
        qty=qty,
        buy_qty=qty,
        sell_qty=qty,
        entry_cost=cost,
        entry_proceeds=proceeds,
        entry_fees=fees,
        entry_spread_pct=0.85,
        opened_at=1_700_000_000.0,
    )


@dataclass(frozen=True)
class Close:
    fraction: Decimal  # of the entry quantity
    proceeds: Decimal
    cost: Decimal
    fees: Decimal


money = st.decimals(min_value=D(0), max_value=D(10_000_000), places=8)
closes = st.builds(
    Close,
    st.decimals(min_value=D("0.0001"), max_value=D("0.7"), places=4),
    money,
    money,
    st.decimals(min_value=D(0), max_value=D(50_000), places=8),
)


@settings(max_examples=300, deadline=None)
@given(
    qty=st.decimals(min_value=D("0.0001"), max_value=D(50), places=8),
    cost=money,
    proceeds=money,
    fees=st.decimals(min_value=D(0), max_value=D(50_000), places=8),
    parts=st.lists(closes, min_size=1, max_size=8),
)
def test_partial_closes_realize_the_entry_spread_plus_each_exit(
    qty: Decimal, cost: Decimal, proceeds: Decimal, fees: Decimal, parts: list[Close]
) -> None:
    pos = position(qty, cost, proceeds, fees)
    entry_result = proceeds - cost - fees
    exits = D(0)
    booked_parts = 0
    for i, part in enumerate(parts):
        if pos.state is PositionState.CLOSED:
            break
        before = pos
        pos = pos.close_part(
            (qty * part.fraction).quantize(D("1e-8")),
            part.proceeds,
            part.cost,
            part.fees,
            0.1,
            "TAKE_PROFIT",
            1_700_000_100.0 + i,
        )
        booked_parts += 1
        exits += part.proceeds - part.cost - part.fees
        assert pos.qty + pos.closed_qty == qty
        assert D(0) <= pos.qty <= before.qty
        assert pos.realized_pnl == booked(pos.realized_pnl)  # every booking is at the quantum
        assert (pos.state is PositionState.CLOSED) == (pos.qty == 0)
        assert (pos.closed_at is not None) == (pos.state is PositionState.CLOSED)
        # Each part books its pro-rata share of the entry result plus its whole exit trade.
        expected = entry_result * pos.closed_qty / qty + exits
        assert abs(pos.realized_pnl - expected) <= BOOKING_QUANTUM * booked_parts
    if pos.state is PositionState.OPEN:
        pos = pos.close_part(pos.qty, D(0), D(0), D(0), 0.0, "MAX_HOLD", 1_700_001_000.0)
        booked_parts += 1
    assert pos.state is PositionState.CLOSED
    assert pos.closed_qty == qty
    assert abs(pos.realized_pnl - (entry_result + exits)) <= BOOKING_QUANTUM * booked_parts
    assert pos.exit_proceeds - pos.exit_cost - pos.exit_fees == exits


@settings(max_examples=200, deadline=None)
@given(part=closes, extra_fee=st.decimals(min_value=D("0.00000001"), max_value=D(1000), places=8))
def test_fees_always_reduce_what_is_realized(part: Close, extra_fee: Decimal) -> None:
    pos = position()
    qty = (pos.qty * part.fraction).quantize(D("1e-8"))
    cheap = pos.close_part(qty, part.proceeds, part.cost, part.fees, 0.0, "TAKE_PROFIT", 1.0)
    dear = pos.close_part(qty, part.proceeds, part.cost, part.fees + extra_fee, 0.0, "TAKE_PROFIT", 1.0)
    assert dear.realized_pnl < cheap.realized_pnl
    assert cheap.realized_pnl - dear.realized_pnl == booked(extra_fee)
    richer_entry = position(fees=pos.entry_fees + extra_fee * 1000)
    assert richer_entry.close_part(qty, part.proceeds, part.cost, part.fees, 0.0, "X", 1.0).realized_pnl <= (
        cheap.realized_pnl
    )


@pytest.mark.parametrize(
    ("closes_", "realized", "state"),
    [
        # Entry result 101000 - 100000 - 150 = 850; half of it per half closed.
        ([(D("0.5"), D(50_400), D(50_000), D(50))], D(775), PositionState.OPEN),
        (
            [(D("0.5"), D(50_400), D(50_000), D(50)), (D("0.5"), D(50_000), D(50_500), D(50))],
            D(650),  # 775, then 425 - 550
            PositionState.CLOSED,
        ),
        # Closing more than is open closes what is open.
        ([(D(3), D(100_000), D(100_000), D(0))], D(850), PositionState.CLOSED),
    ],
)
def test_close_part_table(
    closes_: list[tuple[Decimal, Decimal, Decimal, Decimal]], realized: Decimal, state: PositionState
) -> None:
    pos = position()
    for qty, proceeds, cost, fees in closes_:
        pos = pos.close_part(qty, proceeds, cost, fees, 0.2, "STOP_LOSS", 5.0)
    assert pos.realized_pnl == realized
    assert pos.state is state
    assert pos.entry_qty == D(1)


def test_inventory_mode_books_the_entry_spread_only() -> None:
    pos = position().close_without_trade("INVENTORY", 9.0)
    assert pos.state is PositionState.CLOSED
    assert pos.realized_pnl == D(850)
    assert (pos.exit_proceeds, pos.exit_cost, pos.exit_fees) == (D(0), D(0), D(0))
    assert pos.closed_at == 9.0 and pos.exit_reason == "INVENTORY"


def test_open_cost_follows_the_open_part() -> None:
    pos = position(qty=D(2), cost=D(200_000))
    assert pos.open_cost == D(200_000)
    pos = pos.close_part(D("0.5"), D(0), D(0), D(0), 0.0, "REDUCE", 1.0)
    assert pos.open_cost == D(150_000)
