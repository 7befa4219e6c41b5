"""Decimal at the order and ledger boundary: conversion and quantization by venue rules."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

ZERO = Decimal(0)
# Accounting-currency amounts are booked at this precision, so that sums of booked amounts are exact.
BOOKING_QUANTUM = Decimal("1e-8")


def booked(amount: Decimal) -> Decimal:
    """An accounting-currency amount as it is booked (realized PnL, hedge costs, fees)."""
    return amount.quantize(BOOKING_QUANTUM)


def dec(value: float | int | str | Decimal) -> Decimal:
    """A Decimal from a float through its shortest repr, so 0.1 stays 0.1."""
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


@dataclass(frozen=True, slots=True)
class MarketRules:
    """A venue's trading rules for one market.

    `buy_fee_in_base` is the share of a buy's quantity that the venue keeps as its fee: its taker
    rate where a buy's fee is taken from the coin bought (Binance, unless it is paid in BNB), 0
    where the fee is paid in the quote or a third currency (Upbit, Binance with BNB fees).
    """

    price_tick: Decimal
    qty_step: Decimal
    min_notional: Decimal = ZERO
    min_qty: Decimal = ZERO
    buy_fee_in_base: Decimal = ZERO

    def round_qty(self, qty: Decimal) -> Decimal:
        return (qty / self.qty_step).to_integral_value(ROUND_DOWN) * self.qty_step

    def buy_qty_for(self, net: Decimal) -> Decimal:
        """The buy quantity that delivers at least `net` of the coin once the venue took its fee
        from it: grossed up by the fee and rounded up to the step, so that it is never short.
        `net` unchanged where the fee is not taken from the coin."""
        if not self.buy_fee_in_base or net <= 0:
            return net
        gross = net / (1 - self.buy_fee_in_base)
        return (gross / self.qty_step).to_integral_value(ROUND_CEILING) * self.qty_step

    def received(self, bought: Decimal) -> Decimal:
        """The coin a buy of `bought` delivers, the fee the venue takes from it deducted."""
        return bought - bought * self.buy_fee_in_base if self.buy_fee_in_base else bought

    def round_price(self, price: Decimal, side: str) -> Decimal:
        """Round to the tick in the direction that keeps a limit order within its bound."""
        rounding = ROUND_FLOOR if side == "buy" else ROUND_CEILING
        return (price / self.price_tick).to_integral_value(rounding) * self.price_tick

    def check(self, qty: Decimal, price: Decimal) -> str | None:
        """None when the order is tradable, else why not."""
        if qty <= 0 or qty < self.min_qty:
            return f"quantity {qty} below the minimum {self.min_qty}"
        if qty * price < self.min_notional:
            return f"notional {qty * price} below the minimum {self.min_notional}"
        return None


# Upbit's published KRW tick table: (lowest price of the band, its price unit), highest band first.
# Built once: the simulator prices every level of every Upbit book with it at each step, and
# constructing the table's 26 Decimals per call was 40% of a step.
UPBIT_KRW_TICKS = (
    (Decimal(2_000_000), Decimal(1000)),
    (Decimal(1_000_000), Decimal(500)),
    (Decimal(500_000), Decimal(100)),
    (Decimal(100_000), Decimal(50)),
    (Decimal(10_000), Decimal(10)),
    (Decimal(1_000), Decimal(1)),
    (Decimal(100), Decimal("0.1")),
    (Decimal(10), Decimal("0.01")),
    (Decimal(1), Decimal("0.001")),
    (Decimal("0.1"), Decimal("0.0001")),
    (Decimal("0.01"), Decimal("0.00001")),
    (Decimal("0.001"), Decimal("0.000001")),
    (Decimal("0.0001"), Decimal("0.0000001")),
)
UPBIT_KRW_FINEST_TICK = Decimal("0.00000001")


def upbit_krw_tick(price: Decimal) -> Decimal:
    """Upbit's KRW-market price unit for a given price (its published tick table)."""
    for floor, tick in UPBIT_KRW_TICKS:
        if price >= floor:
            return tick
    return UPBIT_KRW_FINEST_TICK
