"""The recorded market a replay trades on: each market's latest recorded book at the replay clock's
time, and the book at any later time for fills that land after a latency.

`step()` (before each tick) moves every market to the clock's time with one search over the
recording's timeline, and makes the book of each market's last row it passed from a window of the
timeline already gathered into lists; a side's levels are made only when read past the top
(RecordedSide), so a day of 3.46M rows never becomes 3.46M Python books at once. Each step tells
the tape how far the clock got, so the row groups of levels it has passed are dropped: a book
(and each market's current row) keeps the arrays of its own group, readable after the drop.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from arbitrage.clock import Clock
from arbitrage.domain.book import Level, OrderBook
from arbitrage.errors import PermanentVenueError, VenueUnavailable
from arbitrage.recording.level_cache import GroupLevels
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
        self._names = [(m.venue, m.symbol) for m in tape.markets]
        self._row = [-1] * len(tape.markets)  # the current row of each market, -1 before its first
        # The current row's levels: its book read at another depth after its row group is dropped.
        self._held: list[GroupLevels | None] = [None] * len(tape.markets)
        self._books: list[OrderBook | None] = [None] * len(tape.markets)
        # Taken now, while the first rows' groups are read anyway: by the time a venue asks, the
        # clock may have passed them (a --from range starts with the books standing before it).
        self._first_mids = [_mid_of(self._book(int(m.rows[0]), 1)) for m in tape.markets]
        self._next = 0  # the first timeline position not yet reached
        self._window = _Window(tape, depth, 0)
        self.step()

    def step(self) -> None:
        """Advance every market to its last book received at or before the clock's time."""
        tape = self._tape
        end = int(np.searchsorted(tape.times, self._clock.time(), side="right"))
        start = self._next
        if end <= start:
            return
        self._next = end
        if end - start > WINDOW:  # a jump (the first step, a gap): found in one numpy pass
            passed = tape.timeline[start:end][::-1]
            markets, last = np.unique(tape.market_of[passed], return_index=True)
            for market, row in zip(markets.tolist(), passed[last].tolist(), strict=True):
                levels, at = tape.levels_of(row)
                self._row[market] = row
                self._held[market] = levels
                self._books[market] = self._book(row, self._depth, levels, at)
            tape.advance(end)
            return
        window = self._window
        if end > window.end:
            window = self._window = _Window(tape, self._depth, start)
        # The last row of each market the clock passed: earlier ones were never seen by a tick.
        seen: set[int] = set()
        for at in range(end - 1 - window.start, start - 1 - window.start, -1):
            market = window.market[at]
            if market not in seen:
                seen.add(market)
                self._row[market] = window.row[at]
                self._held[market] = window.levels[at]
                self._books[market] = window.book(at, self._names[market])
        tape.advance(end)

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
            return self._current(i, depth)
        return book

    def book_at(self, venue: str, symbol: str, ts: float, depth: int) -> OrderBook | None:
        """The book recorded last at or before `ts` (a fill landing after its latency); None if none."""
        i = self._market(venue, symbol)
        row = self._tape.markets[i].row_at(ts)
        if row < 0:
            return None
        return self._current(i, depth) if row == self._row[i] else self._book(row, depth)

    def first_mid(self, venue: str, symbol: str) -> float:
        """The market's first recorded mid: a stable price for rules that do not move with it."""
        return _known(self._first_mids[self._market(venue, symbol)], venue, symbol)

    def mid(self, venue: str, symbol: str) -> float:
        return _known(_mid_of(self.book(venue, symbol, self._depth)), venue, symbol)

    def _market(self, venue: str, symbol: str) -> int:
        i = self._index.get((venue, symbol))
        if i is None:
            listed = ", ".join(self.symbols(venue)) or "none"
            raise PermanentVenueError(venue, f"no recorded market {symbol!r} (recorded: {listed})")
        return i

    def _current(self, market: int, depth: int) -> OrderBook:
        """The market's current book at `depth`, from the levels it holds."""
        levels = self._held[market]
        row = self._row[market]
        assert levels is not None  # set with the row
        return self._book(row, depth, levels, int(self._tape.pos[row]))

    def _book(self, row: int, depth: int, levels: GroupLevels | None = None, at: int = 0) -> OrderBook:
        """One tape row's book, each side at most `depth` levels (numpy scalars: one row is read
        cheaper element by element than by gathering arrays); `levels` and `at` where its levels
        are, if the caller has them."""
        tape = self._tape
        if levels is None:
            levels, at = tape.levels_of(row)
        venue, symbol = self._names[tape.market_of[row]]
        bids = _side(levels.bid_px, levels.bid_qty, int(levels.bid_at[at]), int(levels.bid_at[at + 1]), depth)
        asks = _side(levels.ask_px, levels.ask_qty, int(levels.ask_at[at]), int(levels.ask_at[at + 1]), depth)
        return OrderBook(venue, symbol, bids, asks, float(tape.exchange[row]), float(tape.received[row]))


# Timeline positions made Python objects at once: the replay steps through a few dozen rows a tick,
# and a numpy call per tick costs more than indexing a list; a step past it takes the numpy path.
WINDOW = 8192


class _Window:
    """A stretch of the timeline, WINDOW positions from `start`, gathered from the columns in one
    numpy pass per column and row group, and held as lists: what a tick's books are made of."""

    def __init__(self, tape: Tape, depth: int, start: int) -> None:
        self.start = start
        rows = tape.timeline[start : start + WINDOW]
        self.end = start + len(rows)
        self.row: list[int] = rows.tolist()
        self.market: list[int] = tape.market_of[rows].tolist()
        self._exchange: list[float] = tape.exchange[rows].tolist()
        self._received: list[float] = tape.received[rows].tolist()
        groups, pos = tape.group[rows], tape.pos[rows]
        bid, ask = _Gathered(len(rows)), _Gathered(len(rows))
        held: dict[int, GroupLevels] = {}
        for group in np.unique(groups).tolist():  # a window spans a group or two per venue
            mine = groups == group
            levels = held[group] = tape.levels.get(group)
            bid.gather(mine, levels.bid_px, levels.bid_qty, levels.bid_at, pos[mine], depth)
            ask.gather(mine, levels.ask_px, levels.ask_qty, levels.ask_at, pos[mine], depth)
        self.levels: list[GroupLevels] = [held[g] for g in groups.tolist()]
        self._bid = bid.lists()
        self._ask = ask.lists()

    def book(self, at: int, name: tuple[str, str]) -> OrderBook:
        """The book at window position `at`."""
        levels = self.levels[at]
        b_lo, b_hi, b_top = self._bid
        a_lo, a_hi, a_top = self._ask
        bids = RecordedSide(levels.bid_px, levels.bid_qty, b_lo[at], b_hi[at], b_top[at])
        asks = RecordedSide(levels.ask_px, levels.ask_qty, a_lo[at], a_hi[at], a_top[at])
        return OrderBook(name[0], name[1], bids, asks, self._exchange[at], self._received[at])


class _Gathered:
    """One side of a window's books: each position's level range (at most `depth`) and top."""

    def __init__(self, size: int) -> None:
        self.lo = np.zeros(size, dtype=np.int64)
        self.hi = np.zeros(size, dtype=np.int64)
        self.px = np.zeros(size, dtype=np.float64)
        self.qty = np.zeros(size, dtype=np.float64)

    def gather(self, mine: np.ndarray, px: np.ndarray, qty: np.ndarray, at: np.ndarray, pos: np.ndarray,
               depth: int) -> None:
        lo = at[pos]
        hi = np.minimum(at[pos + 1], lo + depth)
        self.lo[mine], self.hi[mine] = lo, hi
        if len(px):  # a group of empty sides has no level to take a top from
            top = np.minimum(lo, len(px) - 1)
            self.px[mine], self.qty[mine] = px[top], qty[top]

    def lists(self) -> tuple[list[int], list[int], list[Level | None]]:
        present = (self.hi > self.lo).tolist()
        tops = [
            (p, q) if ok else None
            for p, q, ok in zip(self.px.tolist(), self.qty.tolist(), present, strict=True)
        ]
        return self.lo.tolist(), self.hi.tolist(), tops


def _side(px: np.ndarray, qty: np.ndarray, lo: int, end: int, depth: int) -> RecordedSide:
    hi = min(end, lo + depth)
    top = (float(px[lo]), float(qty[lo])) if hi > lo else None
    return RecordedSide(px, qty, lo, hi, top)


def _mid_of(book: OrderBook) -> float | None:
    bid, ask = book.best_bid, book.best_ask
    return None if bid is None or ask is None else (bid + ask) / 2


def _known(mid: float | None, venue: str, symbol: str) -> float:
    if mid is None:
        raise VenueUnavailable(venue, f"recorded book of {symbol} has an empty side")
    return mid
