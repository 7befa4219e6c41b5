"""One simulated venue: its markets and books, accounts, and every order it ever accepted.

Venue-neutral: the HTTP modules (binance_api, upbit_api) translate requests into these calls and
the refusals into each venue's own error bodies. Orders live as long as the process, so a bot
that restarts finds them again by id or client id.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from enum import StrEnum

from arbitrage.sim.accounts import Accounts, Wallet
from arbitrage.sim.books import DepthChange, SimBook
from arbitrage.sim.market import SimMarket
from arbitrage.sim.matching import FeeModel, OrderStatus, SimFill, SimOrder, finish, match


class Refusal(StrEnum):
    UNKNOWN_MARKET = "unknown_market"
    BAD_PRICE = "bad_price"  # not on the tick
    BAD_QTY = "bad_qty"  # not on the step, or below the minimum quantity
    MIN_NOTIONAL = "min_notional"
    DUPLICATE_CLIENT_ID = "duplicate_client_id"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    REJECTED = "rejected"  # the reject fault


class OrderRefused(Exception):
    def __init__(self, reason: Refusal, side: str, detail: str = "") -> None:
        self.reason = reason
        self.side = side
        super().__init__(f"{reason.value} ({side}) {detail}".strip())


class ClientIdScope(StrEnum):
    OPEN = "open"  # Binance: unique among open orders; a closed order's id may be used again
    FOREVER = "forever"  # Upbit: an identifier is spent by any attempt, even a refused one


class SimVenue:
    def __init__(
        self,
        name: str,
        markets: Iterable[SimMarket],
        fees: FeeModel,
        start_balances: Mapping[str, Decimal],
        client_id_scope: ClientIdScope,
        uuid_ids: bool,
        rng: random.Random,
        on_change: Callable[[str, DepthChange], None],
    ) -> None:
        self.name = name
        self.fees = fees
        self.client_id_scope = client_id_scope
        self.accounts = Accounts(start_balances)
        self._uuid_ids = uuid_ids
        self._rng = rng
        self._on_change = on_change
        self.markets = {m.market_id: m for m in markets}
        self.books: dict[str, SimBook] = {}
        self.orders: dict[str, SimOrder] = {}
        self._open: dict[str, SimOrder] = {}  # so a market tick only looks at resting orders
        self._by_client: dict[tuple[str, str], list[SimOrder]] = {}
        self._spent_client_ids: set[tuple[str, str]] = set()
        self._order_seq = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        """Forget orders and balances; books start again empty (the model refills them)."""
        first_id = self._rng.randrange(1_000_000, 9_000_000)
        self.books = {
            mid: SimBook(m, first_id, lambda change: self._on_change(self.name, change))
            for mid, m in self.markets.items()
        }
        self.orders.clear()
        self._open.clear()
        self._by_client.clear()
        self._spent_client_ids.clear()
        self.accounts.reset()
        self._order_seq = itertools.count(self._rng.randrange(1_000, 9_000) * 1000)
        self._trade_ids = itertools.count(self._rng.randrange(1_000, 9_000) * 1000)

    def wallet(self, api_key: str) -> Wallet:
        return self.accounts.wallet(api_key)

    def accept(
        self,
        api_key: str,
        market_id: str,
        side: str,
        price: Decimal,
        qty: Decimal,
        tif: str,
        client_id: str | None,
        now_ms: int,
        rejected: bool = False,
    ) -> SimOrder:
        """Validate, lock funds and register a new order (not matched yet); raises OrderRefused."""
        market = self.markets.get(market_id)
        if market is None:
            raise OrderRefused(Refusal.UNKNOWN_MARKET, side, market_id)
        if client_id is not None:
            self._claim_client_id(api_key, client_id, side)
        refusal = self.check(market, price, qty)
        if refusal is not None:
            raise OrderRefused(refusal, side, f"price {price} qty {qty}")
        if rejected:
            raise OrderRefused(Refusal.REJECTED, side)
        lock_asset = market.quote if side == "buy" else market.base
        lock = self.fees.lock_for(side, price, qty)
        if not self.wallet(api_key).lock(lock_asset, lock):
            raise OrderRefused(Refusal.INSUFFICIENT_FUNDS, side, f"{lock} {lock_asset}")
        order = SimOrder(
            self.name,
            api_key,
            self._new_order_id(),
            client_id,
            market,
            side,
            price,
            qty,
            tif,
            now_ms,
            now_ms,
            lock,
            lock_asset,
        )
        self.orders[order.order_id] = order
        self._open[order.order_id] = order
        if client_id is not None:
            self._by_client.setdefault((api_key, client_id), []).append(order)
        return order

    @staticmethod
    def check(market: SimMarket, price: Decimal, qty: Decimal) -> Refusal | None:
        """The market rule an order breaks (tick, step and minimum, minimum notional), if any."""
        if not market.on_tick(price):
            return Refusal.BAD_PRICE
        if not market.on_step(qty) or qty < market.min_qty:
            return Refusal.BAD_QTY
        if price * qty < market.min_notional:
            return Refusal.MIN_NOTIONAL
        return None

    def execute(self, order: SimOrder, now_ms: int, fill_ratio: float | None = None) -> list[SimFill]:
        """Match a freshly accepted order; `fill_ratio` (a fault) caps how much of it may fill."""
        cap = None
        if fill_ratio is not None:
            cap = order.market.floor_qty(order.qty * Decimal(repr(fill_ratio)))
        book = self.books[order.market.market_id]
        fills = match(order, book, self.wallet(order.api_key), self.fees, self._trade_ids, now_ms, cap)
        self._forget_if_closed(order)
        return fills

    def cancel(self, order: SimOrder, now_ms: int) -> None:
        finish(order, self.wallet(order.api_key), OrderStatus.CANCELED, now_ms)
        self._forget_if_closed(order)

    def _forget_if_closed(self, order: SimOrder) -> None:
        if not order.is_open:
            self._open.pop(order.order_id, None)

    def find(
        self, api_key: str, order_id: str | None = None, client_id: str | None = None
    ) -> SimOrder | None:
        """An order of this key by venue id, else the latest with that client id."""
        if order_id is not None:
            order = self.orders.get(order_id)
            return order if order is not None and order.api_key == api_key else None
        if client_id is not None:
            found = self._by_client.get((api_key, client_id))
            return found[-1] if found else None
        return None

    def orders_of(
        self, api_key: str, market_id: str | None = None, open_only: bool = False
    ) -> list[SimOrder]:
        return [
            o
            for o in (self._open if open_only else self.orders).values()
            if o.api_key == api_key
            and (market_id is None or o.market.market_id == market_id)
            and (o.is_open or not open_only)
        ]

    def sweep(self, now_ms: int) -> None:
        """Match resting orders against the book as it is now (the market moved through them)."""
        for order in list(self._open.values()):
            book = self.books[order.market.market_id]
            match(order, book, self.wallet(order.api_key), self.fees, self._trade_ids, now_ms)
            self._forget_if_closed(order)

    def _claim_client_id(self, api_key: str, client_id: str, side: str) -> None:
        key = (api_key, client_id)
        if self.client_id_scope is ClientIdScope.FOREVER:
            if key in self._spent_client_ids:
                raise OrderRefused(Refusal.DUPLICATE_CLIENT_ID, side, client_id)
            self._spent_client_ids.add(key)
            return
        if any(o.is_open for o in self._by_client.get(key, ())):
            raise OrderRefused(Refusal.DUPLICATE_CLIENT_ID, side, client_id)

    def random_token(self, length: int) -> str:
        """A seeded random alphanumeric id (Binance's generated client order ids look like this)."""
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(self._rng.choice(alphabet) for _ in range(length))

    def random_uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _new_order_id(self) -> str:
        return self.random_uuid() if self._uuid_ids else str(next(self._order_seq))
