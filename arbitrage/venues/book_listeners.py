"""Telling a feed's BookListeners of a new book, on the feed's own thread: a listener that raises is
logged once and never stops the feed nor the listeners after it."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from arbitrage.domain.book import BookListener, OrderBook

log = logging.getLogger("arbitrage.venues.stream")


class BookListeners:
    def __init__(self, listeners: Sequence[BookListener], feed: str) -> None:
        self._listeners = tuple(listeners)
        self._feed = feed
        self._failed: set[int] = set()  # the listeners whose failure is already logged

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def tell(self, book: OrderBook) -> None:
        for i, listener in enumerate(self._listeners):
            try:
                listener(book)
            except Exception:
                if i not in self._failed:
                    self._failed.add(i)
                    log.exception(
                        "%s: book listener %r raised (logged once; the feed goes on)", self._feed, listener
                    )
