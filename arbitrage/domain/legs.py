"""Accounting for the legs of a pair trade and for the inventory they leave unhedged.

A `LegTally` sums one venue leg's fills: forward fills (the leg's own side, retries included)
and unwind fills (the opposite side on the same venue), in the coin they moved in the account
(a buy whose fee the venue took from the coin delivered less than it filled). A `ResidualBook`
holds the quantities that ended outside any hedged position, with their value in the accounting
currency, and books the result when they are netted or unwound. Everything here is Decimal and pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from arbitrage.domain.money import ZERO
from arbitrage.domain.orders import Order


def fee_in_quote(order: Order) -> Decimal:
    """Venue adapters value every fee in the market's quote currency, one taken in the coin too."""
    return order.fee


@dataclass
class LegTally:
    venue: str
    symbol: str
    side: str  # the leg's forward side
    fx: Decimal  # quote -> accounting currency
    planned_price: Decimal
    fwd_qty: Decimal = ZERO
    fwd_notional: Decimal = ZERO
    fwd_fee: Decimal = ZERO
    back_qty: Decimal = ZERO
    back_notional: Decimal = ZERO
    back_fee: Decimal = ZERO
    orders: list[Order] = field(default_factory=list)

    def add(self, order: Order) -> None:
        """Count an order's fills by the coin they moved (a fee taken from the coin bought left
        less of it), valued at the fill price: with the fee at its quote value on top, that is
        exactly the cash paid or received."""
        self.orders.append(order)
        if order.filled_qty <= 0:
            return
        qty = order.net_qty
        notional = qty * order.avg_fill_price
        if order.side == self.side:
            self.fwd_qty += qty
            self.fwd_notional += notional
            self.fwd_fee += fee_in_quote(order)
        else:
            self.back_qty += qty
            self.back_notional += notional
            self.back_fee += fee_in_quote(order)

    @property
    def net(self) -> Decimal:
        return self.fwd_qty - self.back_qty

    @property
    def avg_price(self) -> Decimal:
        return self.fwd_notional / self.fwd_qty if self.fwd_qty else ZERO

    def value(self, qty: Decimal) -> Decimal:
        """`qty` of the forward fills valued at their average price, accounting currency."""
        return qty * self.avg_price * self.fx

    def fee_share(self, qty: Decimal) -> Decimal:
        return self.fwd_fee * qty / self.fwd_qty * self.fx if self.fwd_qty else ZERO

    def unwind_result(self) -> Decimal:
        """What unwinding part of this leg made (usually lost), fees of that part included."""
        if not self.back_qty:
            return ZERO
        forward_value = self.back_qty * self.avg_price
        gained = (
            self.back_notional - forward_value if self.side == "buy" else forward_value - self.back_notional
        )
        return (gained - self.back_fee) * self.fx - self.fee_share(self.back_qty)

    def leftover(self, hedged: Decimal) -> tuple[Decimal, Decimal]:
        """The part beyond `hedged` as (signed qty, signed value): bought is +qty paid for, sold is -qty."""
        extra = self.net - hedged
        if extra <= 0:
            return ZERO, ZERO
        if self.side == "buy":
            return extra, -self.value(extra) - self.fee_share(extra)
        return -extra, self.value(extra) - self.fee_share(extra)


@dataclass
class Residual:
    qty: Decimal = ZERO  # signed: + held beyond positions, - owed to positions
    value: Decimal = ZERO  # signed accounting-currency cash flow that produced it


class ResidualBook:
    """Unhedged inventory per (venue, asset); netting opposite quantities realizes their result."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Residual] = {}
        self.version = 0  # counts the changes add() made: a reader may skip a book it has seen

    def add(self, venue: str, asset: str, qty: Decimal, value: Decimal) -> Decimal:
        """Add a signed quantity with its value; returns the result realized by netting."""
        if qty == 0:
            return value  # a cash flow with no quantity left behind is realized at once
        self.version += 1
        cur = self.items.setdefault((venue, asset), Residual())
        if cur.qty == 0 or (cur.qty > 0) == (qty > 0):
            cur.qty += qty
            cur.value += value
            return ZERO
        closing = min(abs(cur.qty), abs(qty))
        realized = cur.value * closing / abs(cur.qty) + value * closing / abs(qty)
        cur_left = abs(cur.qty) - closing
        new_left = abs(qty) - closing
        if cur_left > 0:
            cur.value = cur.value * cur_left / abs(cur.qty)
            cur.qty = cur_left if cur.qty > 0 else -cur_left
        else:
            cur.value = value * new_left / abs(qty)
            cur.qty = new_left if qty > 0 else -new_left
        if cur.qty == 0:
            del self.items[(venue, asset)]
        return realized

    def net(self, asset: str) -> Decimal:
        return sum((r.qty for (_, a), r in self.items.items() if a == asset), ZERO)

    def quantities(self) -> dict[tuple[str, str], Decimal]:
        return {k: r.qty for k, r in self.items.items()}
