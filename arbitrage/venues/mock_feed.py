"""The mock market moved on a thread of its own, `mock.updates_per_s` times a second, as a venue's
stream would: each step's books are built here, not in the tick, and every listener is told of each."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from arbitrage.clock import Clock
from arbitrage.domain.book import BookListener
from arbitrage.venues.book_listeners import BookListeners
from arbitrage.venues.mock_market import MockMarket

log = logging.getLogger("arbitrage.venues.mock")
JOIN_TIMEOUT_S = 2.0


class MockMarketFeed:
    def __init__(
        self,
        market: MockMarket,
        updates_per_s: float,
        depth: int,
        listeners: Sequence[BookListener],
        clock: Clock,
    ) -> None:
        self._market = market
        self._period = 1.0 / updates_per_s
        self._depth = depth
        self._listeners = BookListeners(listeners, "mock market feed")
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.steps = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mock-market-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)

    def _run(self) -> None:
        clock, market = self._clock, self._market
        markets = market.markets()
        due = clock.monotonic()
        while not self._stop.is_set():
            market.step()
            self.steps += 1
            for venue, symbol in markets:
                book = market.book(venue, symbol, self._depth)  # built here: the tick finds it made
                self._listeners.tell(book)
            due += self._period
            delay = due - clock.monotonic()
            if delay <= 0:  # behind (a loaded machine): the next step now, no burst to catch up
                due = clock.monotonic()
            elif clock.wait(self._stop, delay):
                break
