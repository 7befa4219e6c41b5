"""The "books changed" signal between the streams and the loop: which books changed since the last tick.

A stream thread calls `BookEvents` (a BookListener) with each new book; the loop waits on `signal`,
then `take()`s the set of changed (venue, symbol) keys in one swap. An update that arrives while a
tick runs lands in the next set, so any number of them make one next tick, never a backlog, and each
update is in exactly one tick's set: `updates == taken + pending()` always holds, which is how the
benchmark checks that none was lost or processed twice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from arbitrage.domain.book import OrderBook

BookKey = tuple[str, str]  # (venue, market symbol)


@dataclass(frozen=True, slots=True)
class Changed:
    """What one take() handed to a tick: the changed books and how many updates made them."""

    keys: frozenset[BookKey]
    updates: int


class BookEvents:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed: set[BookKey] = set()
        self._pending = 0
        # Set while something is pending (or the loop is asked to stop); the loop waits on it.
        self.signal = threading.Event()
        self.updates = 0  # every update ever told
        self.taken = 0  # the updates handed to ticks

    def __call__(self, book: OrderBook) -> None:
        with self._lock:
            self._changed.add((book.venue, book.symbol))
            self._pending += 1
            self.updates += 1
            # The first update since the last take wakes the loop; the signal stays set until the
            # next take (which clears it under this lock), so setting it again would only pay an
            # Event's own lock and notify: most of this call's cost, told 41 books a mock tick.
            if self._pending == 1:
                self.signal.set()

    def take(self) -> Changed:
        """The changed books since the last take, and a fresh empty set for the next."""
        with self._lock:
            keys, self._changed = self._changed, set()
            updates, self._pending = self._pending, 0
            self.taken += updates
            self.signal.clear()
        return Changed(frozenset(keys), updates)

    def pending(self) -> int:
        with self._lock:
            return self._pending

    def counts(self) -> tuple[int, int, int]:
        """(updates told, updates taken, updates pending), read together."""
        with self._lock:
            return self.updates, self.taken, self._pending

    def interrupt(self) -> None:
        """Wake a loop waiting on `signal` (it is stopping); pending updates stay pending."""
        self.signal.set()
