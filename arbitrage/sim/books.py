"""The simulator's order book per (venue, market): levels, update ids and change events.

Every change (a market tick, liquidity taken by an order) bumps `update_id` by one and emits a
DepthChange with the absolute quantity of every level that changed (0 = removed): the shape of a
Binance diff-depth event, so the REST snapshot's lastUpdateId and the stream's U/u always agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from arbitrage.sim.market import Level, SimMarket

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class DepthChange:
    market_id: str
    first_id: int  # Binance "U"
    last_id: int  # Binance "u"
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_ms: int


def _diff(old: list[Level], new: list[Level]) -> tuple[Level, ...]:
    before = dict(old)
    after = dict(new)
    changed = [(p, q) for p, q in new if before.get(p) != q]
    removed = [(p, ZERO) for p in before if p not in after]
    return tuple(changed + removed)


class SimBook:
    """One market's book; bids and asks best first. Mutated only on the server's event loop."""

    def __init__(
        self, market: SimMarket, first_update_id: int, listener: Callable[[DepthChange], None] | None = None
    ) -> None:
        self.market = market
        self.bids: list[Level] = []
        self.asks: list[Level] = []
        self.update_id = first_update_id
        self.changed_ms = 0
        self.frozen = False  # a frozen book does not follow the market model (stale data)
        self._listener = listener

    def replace(self, bids: list[Level], asks: list[Level], now_ms: int) -> None:
        self._commit(list(bids), list(asks), now_ms)

    def available(self, taking: str, limit: Decimal) -> Decimal:
        """Quantity a taker could get within `limit`: a buy takes asks up to it, a sell bids down to it."""
        return sum((q for p, q in self._crossing(taking, limit)), ZERO)

    def take(self, taking: str, limit: Decimal, qty: Decimal, now_ms: int) -> list[Level]:
        """Remove up to `qty` within `limit` from the side a taker consumes; the (price, qty) taken."""
        levels = self.asks if taking == "buy" else self.bids
        left = qty
        taken: list[Level] = []
        rest: list[Level] = []
        for price, size in levels:
            crosses = price <= limit if taking == "buy" else price >= limit
            if left > 0 and crosses:
                got = min(size, left)
                taken.append((price, got))
                left -= got
                if size > got:
                    rest.append((price, size - got))
            else:
                rest.append((price, size))
        if taken:
            if taking == "buy":
                self._commit(self.bids, rest, now_ms)
            else:
                self._commit(rest, self.asks, now_ms)
        return taken

    def top(self, depth: int) -> tuple[list[Level], list[Level]]:
        return self.bids[:depth], self.asks[:depth]

    def _crossing(self, taking: str, limit: Decimal) -> list[Level]:
        if taking == "buy":
            return [(p, q) for p, q in self.asks if p <= limit]
        return [(p, q) for p, q in self.bids if p >= limit]

    def _commit(self, bids: list[Level], asks: list[Level], now_ms: int) -> None:
        bid_changes = _diff(self.bids, bids)
        ask_changes = _diff(self.asks, asks)
        self.bids, self.asks = bids, asks
        if not bid_changes and not ask_changes:
            return
        self.changed_ms = now_ms
        self.update_id += 1
        change = DepthChange(
            self.market.market_id, self.update_id, self.update_id, bid_changes, ask_changes, now_ms
        )
        if self._listener is not None:
            self._listener(change)
