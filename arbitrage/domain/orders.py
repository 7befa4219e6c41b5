"""Orders, their lifecycle as a transition table, and the events that move them.

Commands are imperative (`OrderRequest`), events past tense (`OrderFilled`), what a venue says
about an order is an `OrderReport`. `apply(order, event)` is the only way an order changes
state; a transition the table does not allow raises InvalidTransition and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from arbitrage.domain.money import ZERO
from arbitrage.errors import InvalidTransition


class OrderState(StrEnum):
    PENDING = "PENDING"  # written to the ledger, not yet sent
    SUBMITTED = "SUBMITTED"  # about to be sent / sent, outcome not yet known
    ACCEPTED = "ACCEPTED"  # the venue holds it, nothing filled
    PARTIAL = "PARTIAL"  # partly filled, still live
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"  # ended by a cancel (possibly after a partial fill)
    REJECTED = "REJECTED"  # refused by the venue or never sent
    EXPIRED = "EXPIRED"  # ended by its time in force (IOC remainder), possibly after a partial fill

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.EXPIRED})

S = OrderState
TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    S.PENDING: frozenset({S.SUBMITTED, S.REJECTED, S.CANCELLED}),
    S.SUBMITTED: frozenset({S.ACCEPTED, S.PARTIAL, S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED}),
    S.ACCEPTED: frozenset({S.PARTIAL, S.FILLED, S.CANCELLED, S.EXPIRED}),
    S.PARTIAL: frozenset({S.PARTIAL, S.FILLED, S.CANCELLED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}


def can_transition(src: OrderState, dst: OrderState) -> bool:
    return dst in TRANSITIONS[src]


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A command: place this IOC limit order."""

    client_order_id: str
    venue: str
    symbol: str  # market symbol on the venue, e.g. "BTC/KRW"
    side: str  # "buy" | "sell"
    qty: Decimal
    price: Decimal
    purpose: str = "entry"  # entry | exit | retry | unwind
    position_id: str | None = None
    group: str = ""  # the opportunity or exit this order belongs to (ids.group_of)


@dataclass(frozen=True, slots=True)
class Order:
    client_order_id: str
    venue: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    state: OrderState = OrderState.PENDING
    filled_qty: Decimal = ZERO
    avg_fill_price: Decimal = ZERO
    fee: Decimal = ZERO  # every fee, valued in the market's quote currency
    venue_order_id: str | None = None
    purpose: str = "entry"
    position_id: str | None = None
    opportunity_id: str | None = None
    reason: str | None = None
    # The part of the fee the venue took in the base coin itself, in the coin (Binance on a buy):
    # also inside `fee` at its quote value, but it changes how much coin the order moved.
    fee_base: Decimal = ZERO

    @classmethod
    def from_request(cls, req: OrderRequest, opportunity_id: str | None = None) -> Order:
        return cls(
            client_order_id=req.client_order_id,
            venue=req.venue,
            symbol=req.symbol,
            side=req.side,
            qty=req.qty,
            price=req.price,
            purpose=req.purpose,
            position_id=req.position_id,
            opportunity_id=opportunity_id,
        )

    @property
    def remaining_qty(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def notional(self) -> Decimal:
        return self.filled_qty * self.avg_fill_price

    @property
    def net_qty(self) -> Decimal:
        """The coin this order moved in the account: a buy's fill less the fee taken in the coin
        (what arrived), a sell's fill plus such a fee (what left)."""
        if not self.fee_base:
            return self.filled_qty
        return self.filled_qty - self.fee_base if self.side == "buy" else self.filled_qty + self.fee_base


# Events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderSubmitted:
    pass


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    venue_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class OrderFilled:
    """A fill of `qty` at `price` with `fee` (valued in the quote currency), of which `fee_base`
    was taken in the base coin itself."""

    qty: Decimal
    price: Decimal
    fee: Decimal = ZERO
    trade_id: str | None = None
    fee_base: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class OrderRejected:
    reason: str


@dataclass(frozen=True, slots=True)
class OrderExpired:
    reason: str | None = None


OrderEvent = OrderSubmitted | OrderAccepted | OrderFilled | OrderCancelled | OrderRejected | OrderExpired


def _target(order: Order, event: OrderEvent) -> OrderState:
    if isinstance(event, OrderSubmitted):
        return S.SUBMITTED
    if isinstance(event, OrderAccepted):
        return S.ACCEPTED
    if isinstance(event, OrderFilled):
        return S.FILLED if order.filled_qty + event.qty >= order.qty else S.PARTIAL
    if isinstance(event, OrderCancelled):
        return S.CANCELLED
    if isinstance(event, OrderRejected):
        return S.REJECTED
    return S.EXPIRED


def apply(order: Order, event: OrderEvent) -> Order:
    """The order after `event`, or InvalidTransition if the table does not allow it."""
    dst = _target(order, event)
    if not can_transition(order.state, dst):
        raise InvalidTransition(
            f"order {order.client_order_id}: {type(event).__name__} not allowed in state "
            f"{order.state.value} (would move to {dst.value})"
        )
    if isinstance(event, OrderFilled):
        if event.qty <= 0:
            raise InvalidTransition(f"order {order.client_order_id}: fill of non-positive qty {event.qty}")
        if order.filled_qty + event.qty > order.qty:
            raise InvalidTransition(
                f"order {order.client_order_id}: fill of {event.qty} exceeds remaining {order.remaining_qty}"
            )
        filled = order.filled_qty + event.qty
        avg = (order.filled_qty * order.avg_fill_price + event.qty * event.price) / filled
        return replace(
            order,
            state=dst,
            filled_qty=filled,
            avg_fill_price=avg,
            fee=order.fee + event.fee,
            fee_base=order.fee_base + event.fee_base,
        )
    if isinstance(event, OrderAccepted):
        return replace(order, state=dst, venue_order_id=event.venue_order_id or order.venue_order_id)
    if isinstance(event, OrderRejected | OrderCancelled | OrderExpired):
        return replace(order, state=dst, reason=event.reason)
    return replace(order, state=dst)


@dataclass(frozen=True, slots=True)
class OrderReport:
    """What a venue says about one order, as cumulative totals."""

    client_order_id: str
    state: OrderState
    filled_qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    fee: Decimal = ZERO  # every fee, valued in the quote currency
    venue_order_id: str | None = None
    reason: str | None = None
    fee_base: Decimal = ZERO  # the part of the fee taken in the base coin, in the coin


def events_from_report(order: Order, report: OrderReport) -> list[OrderEvent]:
    """The events that move `order` to what `report` says, in lifecycle order.

    Fills are derived from the cumulative totals, so applying the same report twice adds nothing.
    """
    events: list[OrderEvent] = []
    new_qty = report.filled_qty - order.filled_qty
    if order.state.terminal and new_qty <= 0:
        # Already finished with these fills: a final report seen again adds nothing (a late
        # fill on a finished order still yields a fill, which `apply` refuses, loudly).
        return events
    if order.state is S.PENDING:
        events.append(OrderSubmitted())
    # Rejected before the venue took it; once accepted (or partly filled) a "rejected" ends a live
    # order, which the table calls an expiry.
    if report.state is S.REJECTED and order.state in (S.PENDING, S.SUBMITTED) and new_qty <= 0:
        events.append(OrderRejected(report.reason or "rejected"))
        return events
    if report.state is S.ACCEPTED and order.state in (S.PENDING, S.SUBMITTED):
        events.append(OrderAccepted(report.venue_order_id))
    if new_qty > 0:
        # The new part's price from the change in cumulative notional.
        new_notional = report.filled_qty * report.avg_price - order.filled_qty * order.avg_fill_price
        price = new_notional / new_qty
        fee_base = max(report.fee_base - order.fee_base, ZERO)
        events.append(OrderFilled(new_qty, price, max(report.fee - order.fee, ZERO), fee_base=fee_base))
    if max(report.filled_qty, order.filled_qty) >= order.qty:
        # The last fill finished it, whatever the venue calls the end (a cancel racing the fill).
        return events
    if report.state is S.CANCELLED:
        events.append(OrderCancelled(report.reason))
    elif report.state is S.EXPIRED:
        events.append(OrderExpired(report.reason))
    elif report.state is S.REJECTED:
        # Rejected after a partial fill is how some venues end an IOC remainder.
        events.append(OrderExpired(report.reason or "rejected remainder"))
    elif report.state is S.FILLED:
        # "Done" a rounding step short of the quantity: the order is over, not left open forever.
        events.append(OrderExpired(report.reason or "reported filled short of the order quantity"))
    return events
