"""The recorded market a replay trades on: each market's latest recorded book at the replay clock's
time, and the book at any later time for fills that land after a latency.

`step()` (before each tick) moves every market to the clock's time with one search over the
recording's timeline; a book is made only when read, and its sides only past the top
(RecordedSide), so a day of 3.46M rows never becomes 3.46M Python books at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np

from arbitrage.clock import Clock
from arbitrage.domain.book import Level, OrderBook
from arbitrage.errors import PermanentVenueError, VenueUnavailable
from arbitrage.recording.tape import MarketTape, Tape


class RecordedSide(Sequence[Level]):
    """One side of a recorded book, read from the recording's columns: the top alone without
    making the rest, the levels on the first read past it."""

    __slots__ = ("_hi", "_levels", "_lo", "_px", "_qty")

    def __init__(self, px: np.ndarray, qty: np.ndarray, lo: int, hi: int) -> None:
        self._px = px
        self._qty = qty
        self._lo = lo
        self._hi = hi
        self._levels: tuple[Level, ...] | None = None

    def levels(self) -> tuple[Level, ...]:
        levels = self._levels
        if levels is None:
            lo, hi = self._lo, self._hi
            pairs = zip(self._px[lo:hi].tolist(), self._qty[lo:hi].tolist(), strict=True)
            levels = self._levels = tuple(pairs)
        return levels

    @overload
    def __getitem__(self, index: int) -> Level: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Level, ...]: ...

    def __getitem__(self, index: int | slice) -> Level | tuple[Level, ...]:
        if index == 0 and self._levels is None:
            if self._hi <= self._lo:
                raise IndexError("empty side")
            return (float(self._px[self._lo]), float(self._qty[self._lo]))
        return self.levels()[index]

    def __len__(self) -> int:
        return self._hi - self._lo

    def __iter__(self) -> Iterator[Level]:
        return iter(self.levels())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RecordedSide):
            return self.levels() == other.levels()
        return isinstance(other, tuple) and self.levels() == other

    def __hash__(self) -> int:
        return hash(self.levels())

    def __repr__(self) -> str:
        return repr(self.levels())


class ReplayMarket:
    """Every recorded market, positioned at the replay clock's time by `step()`."""

    def __init__(self, tape: Tape, clock: Clock) -> None:
        self._tape = tape
        self._clock = clock
        self._index = tape.index()
        self._row = [-1] * len(tape.markets)  # the current row of each market, -1 before its first
        self._books: list[OrderBook | None] = [None] * len(tape.markets)
        self._depth = [0] * len(tape.markets)  # the depth each cached book was made at
        self._next = 0  # the first timeline entry not yet reached
        self.step()

    def step(self) -> None:
        """Advance every market to its last book received at or before the clock's time."""
        tape = self._tape
        end = int(np.searchsorted(tape.times, self._clock.time(), side="right"))
        if end <= self._next:
            return
        rows, books = self._row, self._books
        for market, row in zip(
            tape.market_of[self._next : end].tolist(), tape.row_of[self._next : end].tolist(), strict=True
        ):
            rows[market] = row
            books[market] = None
        self._next = end

    def has_market(self, venue: str, symbol: str) -> bool:
        return (venue, symbol) in self._index

    def symbols(self, venue: str) -> list[str]:
        return [symbol for v, symbol in self._index if v == venue]

    def book(self, venue: str, symbol: str, depth: int) -> OrderBook:
        """The latest recorded book; VenueUnavailable before the market's first row."""
        i = self._market(venue, symbol)
        book = self._books[i]
        if book is None or self._depth[i] != depth:
            row = self._row[i]
            if row < 0:
                raise VenueUnavailable(venue, f"no recorded book of {symbol} yet")
            book = _book(self._tape.markets[i], row, depth)
            self._books[i], self._depth[i] = book, depth
        return book

    def book_at(self, venue: str, symbol: str, ts: float, depth: int) -> OrderBook | None:
        """The book recorded last at or before `ts` (a fill landing after its latency); None if none."""
        market = self._tape.markets[self._market(venue, symbol)]
        row = market.row_at(ts)
        return None if row < 0 else _book(market, row, depth)

    def first_mid(self, venue: str, symbol: str) -> float:
        """The market's first recorded mid: a stable price for rules that do not move with it."""
        book = _book(self._tape.markets[self._market(venue, symbol)], 0, 1)
        return _mid(book, venue, symbol)

    def mid(self, venue: str, symbol: str) -> float:
        i = self._market(venue, symbol)
        if self._row[i] < 0:
            raise VenueUnavailable(venue, f"no recorded book of {symbol} yet")
        return _mid(_book(self._tape.markets[i], self._row[i], 1), venue, symbol)

    def _market(self, venue: str, symbol: str) -> int:
        i = self._index.get((venue, symbol))
        if i is None:
            listed = ", ".join(self.symbols(venue)) or "none"
            raise PermanentVenueError(venue, f"no recorded market {symbol!r} (recorded: {listed})")
        return i


def _book(m: MarketTape, row: int, depth: int) -> OrderBook:
    b_lo, a_lo = int(m.bid_at[row]), int(m.ask_at[row])
    b_hi, a_hi = min(int(m.bid_at[row + 1]), b_lo + depth), min(int(m.ask_at[row + 1]), a_lo + depth)
    return OrderBook(
        m.venue,
        m.symbol,
        RecordedSide(m.bid_px, m.bid_qty, b_lo, b_hi),
        RecordedSide(m.ask_px, m.ask_qty, a_lo, a_hi),
        float(m.exchange[row]),
        float(m.received[row]),
    )


def _mid(book: OrderBook, venue: str, symbol: str) -> float:
    bid, ask = book.best_bid, book.best_ask
    if bid is None or ask is None:
        raise VenueUnavailable(venue, f"recorded book of {symbol} has an empty side")
    return (bid + ask) / 2
