"""The recorded market a replay trades on: each market's latest recorded book at the replay clock's
time, and the book at any later time for fills that land after a latency.

`step()` (before each tick) moves every market to the clock's time with one search over the
recording's timeline; a book is made only when read, and its sides only past the top
(RecordedSide), so a day of 3.46M rows never becomes 3.46M Python books at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from arbitrage.clock import Clock
from arbitrage.domain.book import Level, OrderBook
from arbitrage.errors import PermanentVenueError, VenueUnavailable
from arbitrage.recording.tape import Tape
from arbitrage.venues.lazy_side import LazySide


class RecordedSide(LazySide):
    """One side of a recorded book, read from the recording's columns: the top given (taken with
    every book of the tick in one gather), the levels made on the first read past it."""

    __slots__ = ("_hi", "_lo", "_px", "_qty", "_top")

    def __init__(self, px: np.ndarray, qty: np.ndarray, lo: int, hi: int, top: Level | None) -> None:
        self._px = px
        self._qty = qty
        self._lo = lo
        self._hi = hi
        self._top = top
        self._levels = None

    def _first(self) -> Level:
        if self._top is None:
            raise IndexError("empty side")
        return self._top

    def _make(self) -> tuple[Level, ...]:
        lo, hi = self._lo, self._hi
        return tuple(zip(self._px[lo:hi].tolist(), self._qty[lo:hi].tolist(), strict=True))

    def __len__(self) -> int:
        return self._hi - self._lo

    def __iter__(self) -> Iterator[Level]:
        return iter(self.levels())


class ReplayMarket:
    """Every recorded market, positioned at the replay clock's time by `step()`; books `depth`
    levels deep (the loop's book depth) are made as the clock passes their rows."""

    def __init__(self, tape: Tape, clock: Clock, depth: int) -> None:
        self._tape = tape
        self._clock = clock
        self._depth = depth
        self._index = tape.index()
        self._row = [-1] * len(tape.markets)  # the current row of each market, -1 before its first
        self._books: list[OrderBook | None] = [None] * len(tape.markets)
        self._next = 0  # the first tape row not yet reached
        self.step()

    def step(self) -> None:
        """Advance every market to its last book received at or before the clock's time."""
        tape = self._tape
        end = int(np.searchsorted(tape.times, self._clock.time(), side="right"))
        start = self._next
        if end <= start:
            return
        self._next = end
        # The last row of each market the clock passed: earlier ones were never seen by a tick.
        passed = tape.timeline[start:end][::-1]
        markets, last = np.unique(tape.market_of[passed], return_index=True)
        rows = passed[last]
        books = _books(tape, rows, self._depth)
        for market, row, book in zip(markets.tolist(), rows.tolist(), books, strict=True):
            self._row[market] = row
            self._books[market] = book

    def has_market(self, venue: str, symbol: str) -> bool:
        return (venue, symbol) in self._index

    def symbols(self, venue: str) -> list[str]:
        return [symbol for v, symbol in self._index if v == venue]

    def book(self, venue: str, symbol: str, depth: int) -> OrderBook:
        """The latest recorded book; VenueUnavailable before the market's first row."""
        i = self._market(venue, symbol)
        book = self._books[i]
        if book is None:
            raise VenueUnavailable(venue, f"no recorded book of {symbol} yet")
        if depth != self._depth:
            return _books(self._tape, np.array([self._row[i]]), depth)[0]
        return book

    def book_at(self, venue: str, symbol: str, ts: float, depth: int) -> OrderBook | None:
        """The book recorded last at or before `ts` (a fill landing after its latency); None if none."""
        row = self._tape.markets[self._market(venue, symbol)].row_at(ts)
        return None if row < 0 else _books(self._tape, np.array([row]), depth)[0]

    def first_mid(self, venue: str, symbol: str) -> float:
        """The market's first recorded mid: a stable price for rules that do not move with it."""
        first = int(self._tape.markets[self._market(venue, symbol)].rows[0])
        return _mid(_books(self._tape, np.array([first]), 1)[0], venue, symbol)

    def mid(self, venue: str, symbol: str) -> float:
        return _mid(self.book(venue, symbol, self._depth), venue, symbol)

    def _market(self, venue: str, symbol: str) -> int:
        i = self._index.get((venue, symbol))
        if i is None:
            listed = ", ".join(self.symbols(venue)) or "none"
            raise PermanentVenueError(venue, f"no recorded market {symbol!r} (recorded: {listed})")
        return i


def _books(tape: Tape, rows: np.ndarray, depth: int) -> list[OrderBook]:
    """The books of tape rows, each side at most `depth` levels: every column gathered once."""
    names = [(m.venue, m.symbol) for m in tape.markets]
    b_lo, a_lo = tape.bid_at[rows], tape.ask_at[rows]
    b_hi = np.minimum(tape.bid_at[rows + 1], b_lo + depth)
    a_hi = np.minimum(tape.ask_at[rows + 1], a_lo + depth)
    b_top, a_top = _tops(tape.bid_px, tape.bid_qty, b_lo, b_hi), _tops(tape.ask_px, tape.ask_qty, a_lo, a_hi)
    out = []
    bid_px, bid_qty, ask_px, ask_qty = tape.bid_px, tape.bid_qty, tape.ask_px, tape.ask_qty
    for market, ets, rts, bl, bh, bt, al, ah, at in zip(
        tape.market_of[rows].tolist(), tape.exchange[rows].tolist(), tape.received[rows].tolist(),
        b_lo.tolist(), b_hi.tolist(), b_top, a_lo.tolist(), a_hi.tolist(), a_top, strict=True,
    ):
        venue, symbol = names[market]
        bids = RecordedSide(bid_px, bid_qty, bl, bh, bt)
        asks = RecordedSide(ask_px, ask_qty, al, ah, at)
        out.append(OrderBook(venue, symbol, bids, asks, ets, rts))
    return out


def _tops(px: np.ndarray, qty: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[Level | None]:
    if len(px) == 0:
        return [None] * len(lo)
    at = np.minimum(lo, len(px) - 1)
    prices, sizes, present = px[at].tolist(), qty[at].tolist(), (hi > lo).tolist()
    return [(p, q) if ok else None for p, q, ok in zip(prices, sizes, present, strict=True)]


def _mid(book: OrderBook, venue: str, symbol: str) -> float:
    bid, ask = book.best_bid, book.best_ask
    if bid is None or ask is None:
        raise VenueUnavailable(venue, f"recorded book of {symbol} has an empty side")
    return (bid + ask) / 2
