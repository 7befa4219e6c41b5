"""ccxt order structures as OrderReports: the state, cumulative totals, and the fees.

All our orders are IOC limits, so a venue that ends one with a remainder (Binance "expired",
Upbit "cancel") ended it by its time in force: EXPIRED, unless the bot itself cancelled it.
Fees are valued in the market's quote currency: a fee charged in the base asset (Binance on a
buy) is converted at the fill's average price; one in a third currency (BNB) is estimated from
the venue's taker rate, since its price is not at hand. A fee charged in the base asset is also
reported as such (`fee_base`), since it changes how much of the coin the order moved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from arbitrage.domain.book import split_symbol
from arbitrage.domain.money import ZERO
from arbitrage.domain.orders import OrderReport, OrderState
from arbitrage.venues.fills import FEE_UNIT, IOC_REMAINDER, NO_LIQUIDITY

CANCELLED_BY_US = "cancelled by the bot"
SHORT_OF_QTY = "rest of the quantity not placed (rounded to the venue's step)"


def to_decimal(value: Any) -> Decimal | None:
    """A Decimal from a ccxt number or string (floats through their shortest repr); None if absent."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite():
        return None
    # "1.02680000" and 1.0268 are the same amount: keep the shortest plain form (never 1E+2).
    return number.quantize(Decimal(1)) if number == number.to_integral_value() else number.normalize()


def quote_fee(
    fees: Sequence[Mapping[str, Any]] | None,
    symbol: str,
    avg_price: Decimal,
    notional: Decimal,
    fee_rate: Decimal,
) -> Decimal:
    """The sum of `fees` in the quote currency of `symbol`; the taker rate's fee when none are known."""
    base, quote = split_symbol(symbol)
    if not fees:
        return (notional * fee_rate).quantize(FEE_UNIT, ROUND_HALF_EVEN)
    total = ZERO
    for fee in fees:
        cost = to_decimal(fee.get("cost"))
        if cost is None or cost == 0:
            continue
        currency = str(fee.get("currency") or "").upper()
        if currency == quote:
            total += cost
        elif currency == base:
            total += cost * avg_price
        else:
            total += notional * fee_rate
    return total.quantize(FEE_UNIT, ROUND_HALF_EVEN)


def base_fee(fees: Sequence[Mapping[str, Any]] | None, symbol: str) -> Decimal | None:
    """The part of `fees` charged in the base asset of `symbol`, in it; None when no fee is known."""
    if not fees:
        return None
    base = split_symbol(symbol)[0]
    total = ZERO
    for fee in fees:
        cost = to_decimal(fee.get("cost"))
        if cost and str(fee.get("currency") or "").upper() == base:
            total += cost
    return total


def fees_of(order: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The fees ccxt parsed for an order (from its trades or its own fields); None if it said nothing."""
    fees = [f for f in (order.get("fees") or []) if isinstance(f, Mapping) and f.get("cost") is not None]
    if fees:
        return fees
    fee = order.get("fee")
    if isinstance(fee, Mapping) and fee.get("cost") is not None:
        return [fee]
    return None


def state_of(
    status: str | None, filled: Decimal, target: Decimal, cancelled_by_us: bool
) -> tuple[OrderState, str | None]:
    """Our order state for ccxt's unified status, given what filled of the `target` quantity."""
    if target > 0 and filled >= target:
        return OrderState.FILLED, None
    if status == "open" or status is None:
        return (OrderState.PARTIAL if filled > 0 else OrderState.ACCEPTED), None
    if status == "rejected":
        return (
            (OrderState.EXPIRED, IOC_REMAINDER)
            if filled > 0
            else (OrderState.REJECTED, "rejected by the venue")
        )
    if status == "closed":
        return OrderState.EXPIRED, SHORT_OF_QTY
    if cancelled_by_us:
        return OrderState.CANCELLED, CANCELLED_BY_US
    return OrderState.EXPIRED, IOC_REMAINDER if filled > 0 else NO_LIQUIDITY


def fill_totals(
    order: Mapping[str, Any], exact: tuple[Decimal, Decimal] | None, qty_step: Decimal | None = None
) -> tuple[Decimal, Decimal]:
    """Filled quantity and average price; `exact` are (filled, cost) from the raw answer when known.

    Without them, ccxt's unified `filled` is a binary float (0.16999999999999998 for 0.17): the
    quantity goes onto the venue's `qty_step`, as every fill of the venue is, so that no float
    digits reach a position's quantity and leave an untradable remainder behind its exit.
    """
    if exact is not None:
        filled, cost = exact
    else:
        filled = to_decimal(order.get("filled")) or ZERO
        cost = to_decimal(order.get("cost")) or ZERO
    if qty_step is not None:
        filled = on_step(filled, qty_step)
    return filled, average_price(order, filled, cost)


def on_step(qty: Decimal, step: Decimal) -> Decimal:
    """`qty` on the nearest multiple of `step` (unchanged when already on it)."""
    if step <= 0 or qty % step == 0:
        return qty
    return (qty / step).to_integral_value(ROUND_HALF_EVEN) * step


def order_report(
    order: Mapping[str, Any],
    client_order_id: str,
    requested: Decimal | None,
    filled: Decimal,
    avg: Decimal,
    fee: Decimal,
    cancelled_by_us: bool = False,
    fee_base: Decimal = ZERO,
) -> OrderReport:
    """The report for a ccxt order structure, `requested` the quantity sent when known."""
    amount = to_decimal(order.get("amount"))
    target = requested if requested is not None else (amount or ZERO)
    state, reason = state_of(order.get("status"), filled, target, cancelled_by_us)
    venue_id = order.get("id")
    return OrderReport(
        client_order_id=client_order_id,
        state=state,
        filled_qty=filled,
        avg_price=avg,
        fee=fee if filled > 0 else ZERO,
        venue_order_id=str(venue_id) if venue_id is not None else None,
        reason=reason,
        fee_base=fee_base if filled > 0 else ZERO,
    )


def average_price(order: Mapping[str, Any], filled: Decimal, cost: Decimal) -> Decimal:
    if filled <= 0:
        return ZERO
    if cost > 0:
        avg = cost / filled
        # 1404730.00 / 0.01 comes out as 1.404730E+8: the same number, written plainly.
        return avg.quantize(Decimal(1)) if avg.as_tuple().exponent > 0 else avg  # type: ignore[operator]
    average = to_decimal(order.get("average"))
    if average:
        return average
    return to_decimal(order.get("price")) or ZERO  # a limit order never fills worse than its price
