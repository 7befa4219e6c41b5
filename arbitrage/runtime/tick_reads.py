"""A tick's book reads, all under the tick's one deadline.

Each venue's reads go in turn (one ccxt client answers one request at a time anyway), and with
`concurrent` on (real venues) each venue reads on a worker thread of its own, all venues at once,
so a slow venue costs its own books and not the others'. A read not answered by the deadline is
ReadTooLate: the caller treats its book as stale for this tick. The venue caps its requests to the
deadline, so a worker is free again soon after; the tick never waits past the deadline for it
(plus a few milliseconds for an answer already on its way).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field

from arbitrage.clock import Clock
from arbitrage.domain.book import OrderBook
from arbitrage.errors import ReadTooLate, VenueError
from arbitrage.venues.base import Venue

Key = tuple[str, str]
JOIN_GRACE_S = 0.05  # past the deadline, for an answer the venue already has in hand


@dataclass(frozen=True, slots=True)
class BookRead:
    key: Key
    venue: str
    symbol: str
    depth: int


@dataclass(slots=True)
class ReadResults:
    """What a tick's reads brought: books by key, and the error of each read that brought none."""

    books: dict[Key, OrderBook] = field(default_factory=dict)
    errors: dict[Key, VenueError] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def put(self, key: Key, book: OrderBook) -> None:
        with self._lock:
            self.books[key] = book

    def fail(self, key: Key, err: VenueError) -> None:
        with self._lock:
            self.errors[key] = err

    def copy(self) -> ReadResults:
        with self._lock:
            return ReadResults(dict(self.books), dict(self.errors))


def _spent(read: BookRead) -> ReadTooLate:
    return ReadTooLate(read.venue, f"{read.symbol} not read: the tick's read budget is spent")


def read_in_turn(
    venue: Venue, reads: Sequence[BookRead], deadline: float | None, clock: Clock, into: ReadResults
) -> None:
    """One venue's reads, one after another, none started once the deadline has passed."""
    for read in reads:
        if deadline is not None and clock.monotonic() >= deadline:
            into.fail(read.key, _spent(read))
            continue
        try:
            into.put(read.key, venue.order_book(read.symbol, read.depth, deadline))
        except VenueError as err:
            into.fail(read.key, err)


class TickReader:
    def __init__(
        self, venues: Mapping[str, Venue], clock: Clock, budget_s: float | None, concurrent: bool
    ) -> None:
        self._venues = venues
        self._clock = clock
        self.budget_s = budget_s
        self._workers: dict[str, ThreadPoolExecutor] = {}
        if concurrent:
            self._workers = {
                name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"books-{name}") for name in venues
            }

    def read(self, reads: Sequence[BookRead], started: float, in_turn: bool = False) -> ReadResults:
        """Every read of the tick that started at `started` (monotonic); `in_turn` reads on this
        thread even with workers (a few books a stream already holds)."""
        deadline = None if self.budget_s is None else started + self.budget_s
        if in_turn or not self._workers:  # on this thread (mock venues: no I/O to wait for)
            books: dict[Key, OrderBook] = {}
            errors: dict[Key, VenueError] = {}
            venues, clock = self._venues, self._clock
            for read in reads:
                if deadline is not None and clock.monotonic() >= deadline:
                    errors[read.key] = _spent(read)
                    continue
                try:
                    books[read.key] = venues[read.venue].order_book(read.symbol, read.depth, deadline)
                except VenueError as err:
                    errors[read.key] = err
            return ReadResults(books, errors)
        by_venue: dict[str, list[BookRead]] = {}
        for read in reads:
            by_venue.setdefault(read.venue, []).append(read)
        jobs: list[tuple[Future[None], ReadResults, list[BookRead]]] = []
        for name, venue_reads in by_venue.items():
            partial = ReadResults()
            future = self._workers[name].submit(
                read_in_turn, self._venues[name], venue_reads, deadline, self._clock, partial
            )
            jobs.append((future, partial, venue_reads))
        timeout = None if deadline is None else max(0.0, deadline + JOIN_GRACE_S - self._clock.monotonic())
        wait_for([future for future, _, _ in jobs], timeout)
        results = ReadResults()
        for _future, partial, venue_reads in jobs:
            seen = partial.copy()  # a worker still busy may add to `partial` later: not this tick's
            results.books.update(seen.books)
            results.errors.update(seen.errors)
            for read in venue_reads:
                if read.key not in seen.books and read.key not in seen.errors:
                    results.errors[read.key] = ReadTooLate(
                        read.venue, f"{read.symbol}: no answer within the tick's read budget"
                    )
        return results

    def close(self) -> None:
        for worker in self._workers.values():
            worker.shutdown(wait=True, cancel_futures=True)
