"""Simulated IOC fills: walk a book within a limit price, charge the taker fee, settle balances.

Shared by the venues whose fills are simulated (mock and paper). Book levels are floats; a fill
takes them as Decimal at these units (sizes rounded down, so a fill never exceeds what a level
shows), and the fee is rounded to FEE_UNIT of the currency it is paid in: the quote, or, on a
venue that takes a buy's fee from the coin bought (Binance), the base coin.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from arbitrage.domain.book import Level, split_symbol
from arbitrage.domain.money import ZERO, dec
from arbitrage.domain.orders import OrderReport, OrderRequest, OrderState

PRICE_UNIT = Decimal("1e-8")
QTY_UNIT = Decimal("1e-8")
FEE_UNIT = Decimal("1e-8")

IOC_REMAINDER = "IOC remainder expired"
NO_LIQUIDITY = "no liquidity within the limit price"
INSUFFICIENT_BALANCE = "insufficient balance"
DUPLICATE_ID = "duplicate client order id"


def malformed(request: OrderRequest) -> str | None:
    """Why an order cannot be an IOC limit order at all, or None."""
    if request.side not in ("buy", "sell"):
        return f"invalid side {request.side!r}"
    if request.qty <= 0:
        return f"quantity {request.qty} is not positive"
    if request.price <= 0:
        return f"price {request.price} is not positive"
    return None


def take(levels: Sequence[Level], qty: Decimal, limit: Decimal, side: str) -> tuple[Decimal, Decimal]:
    """Walk `levels` for up to `qty` within `limit`: the quantity and quote notional taken."""
    left, filled, notional = qty, ZERO, ZERO
    buy = side == "buy"
    for price_f, size_f in levels:
        if left <= 0:
            break
        price = Decimal(repr(price_f)).quantize(PRICE_UNIT, ROUND_HALF_EVEN)
        if (price > limit) if buy else (price < limit):
            break
        size = Decimal(repr(size_f)).quantize(QTY_UNIT, ROUND_DOWN)
        take_qty = size if size < left else left
        filled += take_qty
        notional += take_qty * price
        left -= take_qty
    return filled, notional


def taker_fee(notional: Decimal, fee_rate: Decimal) -> Decimal:
    return (notional * fee_rate).quantize(FEE_UNIT, ROUND_HALF_EVEN)


def coin_fee(qty: Decimal, fee_rate: Decimal) -> Decimal:
    """The fee a venue takes from the coin a buy of `qty` delivers (Binance rounds it to 1e-8)."""
    return (qty * fee_rate).quantize(FEE_UNIT, ROUND_HALF_EVEN)


def affordable(
    balances: dict[str, Decimal], symbol: str, side: str, qty: Decimal, price: Decimal, fee_rate: Decimal
) -> bool:
    """Whether the free balances cover the order at its limit price (a buy's fee included)."""
    base, quote = split_symbol(symbol)
    if side == "buy":
        return balances.get(quote, ZERO) >= price * qty * (1 + fee_rate)
    return balances.get(base, ZERO) >= qty


def settle(
    balances: dict[str, Decimal],
    symbol: str,
    side: str,
    qty: Decimal,
    notional: Decimal,
    fee: Decimal,
    fee_base: Decimal = ZERO,
) -> None:
    """Move a fill's base and quote amounts: `fee` paid in the quote currency, `fee_base` taken
    from the coin a buy delivers."""
    base, quote = split_symbol(symbol)
    if side == "buy":
        balances[quote] = balances.get(quote, ZERO) - notional - fee
        balances[base] = balances.get(base, ZERO) + qty - fee_base
    else:
        balances[base] = balances.get(base, ZERO) - qty
        balances[quote] = balances.get(quote, ZERO) + notional - fee


@dataclass(frozen=True, slots=True)
class IocFill:
    """What an IOC limit order takes from a book: quantity, exact quote notional and fee (valued
    in the quote), and the part of the fee taken from the coin bought."""

    qty: Decimal
    notional: Decimal
    fee: Decimal
    fee_base: Decimal = ZERO

    @property
    def quote_fee(self) -> Decimal:
        """The fee paid in the quote currency (none when it was taken from the coin)."""
        return ZERO if self.fee_base else self.fee

    @property
    def avg_price(self) -> Decimal:
        return self.notional / self.qty if self.qty else ZERO

    def state(self, requested: Decimal) -> OrderState:
        return OrderState.FILLED if self.qty == requested else OrderState.EXPIRED

    def reason(self, requested: Decimal) -> str | None:
        if self.qty == requested:
            return None
        return IOC_REMAINDER if self.qty > 0 else NO_LIQUIDITY

    def report(self, client_order_id: str, venue_order_id: str, requested: Decimal) -> OrderReport:
        """What the venue answers for an order of `requested` that filled this."""
        return OrderReport(
            client_order_id,
            self.state(requested),
            self.qty,
            self.avg_price,
            self.fee,
            venue_order_id,
            self.reason(requested),
            self.fee_base,
        )


def fill_ioc(
    levels: Sequence[Level],
    side: str,
    qty: Decimal,
    limit: Decimal,
    fee_rate: Decimal,
    buy_fee_in_base: bool = False,
) -> IocFill:
    """An IOC limit order of `qty` at `limit` against `levels` (the side it takes), with its fee,
    taken from the coin on a buy when `buy_fee_in_base`."""
    filled, notional = take(levels, qty, limit, side)
    if filled <= 0:
        return IocFill(filled, notional, ZERO)
    fee_base = coin_fee(filled, fee_rate) if buy_fee_in_base and side == "buy" else ZERO
    return IocFill(filled, notional, taker_fee(notional, fee_rate), fee_base)


class TakenLiquidity:
    """What simulated fills took from the books they walked, so that a second order against the
    same book (a retry, the other pair of a tick) does not fill twice against the same levels.

    A book that shows exactly the levels of the last fill has not moved since (a REST poll, a
    stream's last update, a recorded row): the liquidity taken then is gone. Any change resets it.
    """

    def __init__(self) -> None:
        # (symbol, side) -> (the levels the book showed, price -> quantity taken from them)
        self._taken: dict[tuple[str, str], tuple[Sequence[Level], dict[float, float]]] = {}

    def untaken(self, symbol: str, side: str, levels: Sequence[Level]) -> Sequence[Level]:
        """The side a taker order walks, less what earlier fills took from these same levels."""
        seen = self._taken.get((symbol, side))
        if seen is None or seen[0] != levels:
            return levels
        taken = seen[1]
        return tuple((p, s - taken.get(p, 0.0)) for p, s in levels if s - taken.get(p, 0.0) > 1e-12)

    def take(
        self, symbol: str, side: str, shown: Sequence[Level], walked: Sequence[Level], qty: Decimal
    ) -> None:
        """Record a fill of `qty` that walked `walked` (the untaken part of `shown`)."""
        key = (symbol, side)
        seen = self._taken.get(key)
        taken = seen[1] if seen is not None and seen[0] == shown else {}
        left = float(qty)
        for price, size in walked:
            if left <= 0:
                break
            part = min(size, left)
            taken[price] = taken.get(price, 0.0) + part
            left -= part
        self._taken[key] = (shown, taken)


class SimulatedAccount:
    """A simulated venue's account (paper, replay): free balances from the config, the orders it
    answered by client id, a second order under one id refused as a real venue would (the first
    left alone); the id check, the fill and the balance update are one step even if legs come
    from threads."""

    def __init__(self, balances: Mapping[str, float]) -> None:
        self.balances: dict[str, Decimal] = {asset: dec(v) for asset, v in balances.items()}
        self._orders: dict[str, OrderReport] = {}
        self._lock = threading.Lock()

    def free(self) -> dict[str, Decimal]:
        with self._lock:
            return dict(self.balances)

    def place(self, request: OrderRequest, execute: Callable[[OrderRequest], OrderReport]) -> OrderReport:
        """`execute` fills the order and moves `balances`, under the account's lock."""
        with self._lock:
            cid = request.client_order_id
            if cid in self._orders:
                return OrderReport(cid, OrderState.REJECTED, reason=DUPLICATE_ID)
            report = execute(request)
            self._orders[cid] = report
            return report

    def order(self, client_order_id: str) -> OrderReport | None:
        with self._lock:
            return self._orders.get(client_order_id)


class SimulatedOrders:
    """The Venue interface's order methods for a venue whose account is simulated (paper, replay):
    the subclass keeps a SimulatedAccount and says how an order fills (`_execute`)."""

    _account: SimulatedAccount

    def _execute(self, request: OrderRequest) -> OrderReport:
        raise NotImplementedError

    def balances(self) -> dict[str, Decimal]:
        return self._account.free()

    def submit(self, request: OrderRequest) -> OrderReport:
        return self._account.place(request, self._execute)

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport | None:
        return self._account.order(client_order_id)

    def cancel(self, symbol: str, client_order_id: str) -> OrderReport | None:
        # Every IOC order is terminal once submit() returns: a cancel changes nothing.
        return self._account.order(client_order_id)
