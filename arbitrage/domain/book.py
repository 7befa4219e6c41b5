"""Order books, per-tick market snapshots and book walking.

Books carry floats: they feed analysis, not the ledger. Prices that reach an order are
converted to Decimal and quantized by the venue's rules (see domain.money).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Level = tuple[float, float]  # (price, quantity)


@dataclass(frozen=True, slots=True)
class OrderBook:
    venue: str
    symbol: str  # market symbol on the venue, e.g. "BTC/KRW"
    bids: Sequence[Level]  # best (highest) first; a tuple, or a lazily built side (mock market)
    asks: Sequence[Level]  # best (lowest) first
    exchange_ts: float  # seconds since epoch, as stamped by the venue
    received_ts: float  # seconds since epoch, when we got it

    # One read of the top, not a length test and then a read: a side may be a lazily built
    # sequence (the mock market's), where each is a Python call.
    @property
    def best_bid(self) -> float | None:
        try:
            return self.bids[0][0]
        except IndexError:
            return None

    @property
    def best_ask(self) -> float | None:
        try:
            return self.asks[0][0]
        except IndexError:
            return None

    def age_ms(self, now: float) -> float:
        return max(0.0, (now - self.exchange_ts) * 1000.0)

    def side(self, taking: str) -> Sequence[Level]:
        """The levels a taker order consumes: a buy takes asks, a sell takes bids."""
        return self.asks if taking == "buy" else self.bids


# Told of each new book by the thread that made it (a venue's stream, the mock market's feed),
# right after it is stored. It must be quick and must not block: it runs on the stream's thread.
BookListener = Callable[[OrderBook], None]


def split_symbol(symbol: str) -> tuple[str, str]:
    base, _, quote = symbol.partition("/")
    return base, quote


@dataclass(frozen=True, slots=True)
class Fill:
    """The outcome of walking a book: how much, at what average and worst price."""

    qty: float
    avg_price: float
    worst_price: float

    @property
    def notional(self) -> float:
        return self.qty * self.avg_price


def walk(levels: Sequence[Level], qty: float, limit: float | None = None, taking: str = "buy") -> Fill:
    """Take up to `qty` from `levels`, never past `limit` (a buy's max, a sell's min price)."""
    left = qty
    cost = 0.0
    worst = 0.0
    for price, size in levels:
        if left <= 0:
            break
        if limit is not None and (
            (taking == "buy" and price > limit) or (taking == "sell" and price < limit)
        ):
            break
        take = size if size < left else left
        cost += take * price
        left -= take
        worst = price
    done = qty - left
    if done <= 0:
        return Fill(0.0, 0.0, 0.0)
    return Fill(done, cost / done, worst)


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """Everything the engines see of the market in one tick.

    `books` is keyed by (venue, base asset), e.g. ("upbit", "BTC"); `fx` converts each quote
    currency into the accounting currency (the accounting currency itself maps to 1.0).
    `carried` names the books that did not come this tick (too late, venue down): the last one
    that did stands in, to value positions with, never to trade on. `changed` names the books a
    streamed update changed since the last tick (a book-triggered tick); None means a full pass,
    every book counts as changed.
    """

    ts: float
    books: dict[tuple[str, str], OrderBook]
    fx: dict[str, float]
    fx_age_ms: float = 0.0
    ws_lag_ms: dict[str, float] = field(default_factory=dict)
    carried: frozenset[tuple[str, str]] = frozenset()
    changed: frozenset[tuple[str, str]] | None = None

    def changed_assets(self) -> frozenset[str] | None:
        """The assets with a changed book on some venue; None on a full pass."""
        if self.changed is None:
            return None
        return frozenset(asset for _venue, asset in self.changed)

    def book(self, venue: str, asset: str) -> OrderBook | None:
        return self.books.get((venue, asset))
