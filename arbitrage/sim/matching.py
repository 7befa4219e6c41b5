"""Orders and their matching against the simulator's own books, with fees and settlement.

A limit order takes liquidity from the book within its price; IOC and FOK orders expire with what
they got, GTC orders rest (invisible to other takers) and are matched again whenever the book
moves through their price. Funds are locked on acceptance and settled fill by fill.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from arbitrage.sim.accounts import Wallet
from arbitrage.sim.books import SimBook
from arbitrage.sim.market import SimMarket

ZERO = Decimal(0)
FEE_QUANTUM = Decimal("0.00000001")


class OrderStatus(StrEnum):
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"  # an IOC/FOK remainder


OPEN_STATUSES = (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


@dataclass(frozen=True, slots=True)
class FeeModel:
    """A venue's taker fee and where it is charged."""

    rate: Decimal
    buy_fee_in_base: bool  # Binance takes a buyer's fee from the coin received
    reserve_fee_on_buy: bool  # Upbit locks price * volume * (1 + fee) on a bid

    def lock_for(self, side: str, price: Decimal, qty: Decimal) -> Decimal:
        if side == "sell":
            return qty
        return price * qty * (1 + self.rate) if self.reserve_fee_on_buy else price * qty


@dataclass(frozen=True, slots=True)
class SimFill:
    trade_id: int
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    ts_ms: int

    @property
    def quote_qty(self) -> Decimal:
        return self.price * self.qty


@dataclass(slots=True)
class SimOrder:
    venue: str
    api_key: str
    order_id: str
    client_id: str | None
    market: SimMarket
    side: str  # "buy" | "sell"
    price: Decimal
    qty: Decimal
    tif: str  # "GTC" | "IOC" | "FOK"
    created_ms: int
    updated_ms: int
    locked: Decimal  # what is still locked for this order, in lock_asset
    lock_asset: str
    status: OrderStatus = OrderStatus.NEW
    filled: Decimal = ZERO
    cost: Decimal = ZERO  # quote spent or received, before fees
    fee: Decimal = ZERO
    fee_asset: str = ""
    fills: list[SimFill] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def summary(self) -> dict[str, Any]:
        """How the control API shows an order."""
        return {
            "venue": self.venue,
            "api_key": self.api_key,
            "id": self.order_id,
            "client_id": self.client_id,
            "market": self.market.market_id,
            "side": self.side,
            "price": str(self.price),
            "qty": str(self.qty),
            "tif": self.tif,
            "status": self.status.value,
            "filled": str(self.filled),
            "cost": str(self.cost),
            "fee": str(self.fee),
            "fee_asset": self.fee_asset,
            "created_ms": self.created_ms,
            "updated_ms": self.updated_ms,
        }


def _settle(
    order: SimOrder, wallet: Wallet, fees: FeeModel, price: Decimal, qty: Decimal
) -> tuple[Decimal, str]:
    """Move the funds of one fill; the fee charged and its asset."""
    base, quote = order.market.base, order.market.quote
    if order.side == "buy":
        release = fees.lock_for("buy", order.price, qty)
        if fees.buy_fee_in_base:
            fee, fee_asset = (qty * fees.rate).quantize(FEE_QUANTUM), base
            spent = price * qty
            received = qty - fee
        else:
            fee, fee_asset = (price * qty * fees.rate).quantize(FEE_QUANTUM), quote
            spent = price * qty + fee
            received = qty
        wallet.consume_locked(quote, release)
        wallet.credit(quote, release - spent)
        wallet.credit(base, received)
    else:
        release = qty
        fee, fee_asset = (price * qty * fees.rate).quantize(FEE_QUANTUM), quote
        wallet.consume_locked(base, qty)
        wallet.credit(quote, price * qty - fee)
    order.locked -= release
    return fee, fee_asset


def match(
    order: SimOrder,
    book: SimBook,
    wallet: Wallet,
    fees: FeeModel,
    trade_ids: Iterator[int],
    now_ms: int,
    max_fill: Decimal | None = None,
) -> list[SimFill]:
    """Fill what the book gives within the order's price; update status, balances and the book.

    `max_fill` caps this pass (the forced-partial-fill fault).
    """
    want = order.remaining if max_fill is None else min(order.remaining, max_fill)
    if order.tif == "FOK" and (want < order.remaining or book.available(order.side, order.price) < want):
        want = ZERO
    new_fills: list[SimFill] = []
    if want > 0:
        for price, qty in book.take(order.side, order.price, want, now_ms):
            fee, fee_asset = _settle(order, wallet, fees, price, qty)
            fill = SimFill(next(trade_ids), price, qty, fee, fee_asset, now_ms)
            new_fills.append(fill)
            order.fills.append(fill)
            order.filled += qty
            order.cost += fill.quote_qty
            order.fee += fill.fee
            order.fee_asset = fill.fee_asset
    if new_fills:
        order.updated_ms = now_ms
    if order.remaining <= 0:
        finish(order, wallet, OrderStatus.FILLED, now_ms)
    elif order.tif in ("IOC", "FOK"):
        finish(order, wallet, OrderStatus.EXPIRED, now_ms)
    elif order.filled > 0:
        order.status = OrderStatus.PARTIALLY_FILLED
    return new_fills


def finish(order: SimOrder, wallet: Wallet, status: OrderStatus, now_ms: int) -> None:
    """Close the order: release whatever it still holds locked."""
    wallet.unlock(order.lock_asset, order.locked)
    order.locked = ZERO
    order.status = status
    order.updated_ms = now_ms
