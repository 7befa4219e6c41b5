"""A venue's order books from ccxt.pro's watch_order_book, on a background thread of its own.

The loop thread replaces immutable OrderBooks in a dict and the tick thread only reads them. When
the stream fails or goes silent the venue polls (latest() returns None and the caller fetches the
book over REST) until a fresh client proves the stream live again.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import ccxt.pro

from arbitrage.clock import Clock
from arbitrage.config import MarketDataConfig
from arbitrage.domain.book import BookListener, Level, OrderBook
from arbitrage.errors import ConfigError
from arbitrage.venues.book_listeners import BookListeners
from arbitrage.venues.stream_health import STREAM, Fallback, StreamHealth

log = logging.getLogger("arbitrage.venues.stream")

AlertFn = Callable[[str, str], None]

RETRY_FIRST_S = 0.1  # pause after a failed watch, doubling up to RETRY_MAX_S
RETRY_MAX_S = 2.0
CHECK_EVERY_MAX_S = 0.25
CLOSE_TIMEOUT_S = 1.5  # ccxt's close() itself sleeps 0.25 s (timeout_on_exit)
JOIN_TIMEOUT_S = 3.0


def _levels(side: Sequence[Sequence[Any]], depth: int) -> tuple[Level, ...]:
    return tuple((float(level[0]), float(level[1])) for level in side[:depth])


class BookStream:
    """Streams the books of `symbols` on one venue; see the module docstring for the threads."""

    def __init__(
        self,
        venue_name: str,
        exchange_id: str,
        ccxt_config: dict[str, Any],
        symbols: list[str],
        depth: int,
        config: MarketDataConfig,
        clock: Clock,
        alert: AlertFn | None = None,
        listeners: Sequence[BookListener] = (),
    ) -> None:
        if not symbols:
            raise ConfigError(f"venues.{venue_name}: a book stream needs at least one symbol")
        if not hasattr(ccxt.pro, exchange_id):
            raise ConfigError(f"venues.{venue_name}: ccxt.pro has no WebSocket client for {exchange_id!r}")
        self.venue = venue_name
        self._exchange_id = exchange_id
        self._ccxt_config = copy.deepcopy(ccxt_config)
        self._symbols = list(dict.fromkeys(symbols))
        self._depth = depth
        self._config = config
        self._clock = clock
        self._alert = alert
        self._health = StreamHealth(config, clock)
        self._books: dict[str, OrderBook] = {}
        # (timestamp, nonce) of the last book taken per symbol: ccxt.pro can hand back a book
        # it already gave (a stale cache after a reconnect, a frozen market's snapshot again).
        self._seen: dict[str, tuple[Any, Any]] = {}
        self._markets: tuple[Any, Any] | None = None  # (markets, currencies) of the first client
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop_requested = threading.Event()
        self._alert_key = f"market-data:{venue_name}"
        self._listeners = BookListeners(listeners, f"{venue_name} book stream")

    # ----- the tick thread's side

    @property
    def state(self) -> str:
        """ "stream" when books come from the WebSocket, "poll" when the caller must use REST."""
        return self._health.state

    def latest(self, symbol: str) -> OrderBook | None:
        """The streamed book, or None when polling or when this symbol's book is stale."""
        if self._health.state != STREAM:
            return None
        book = self._books.get(symbol)
        if book is None or self._clock.time() - book.received_ts > self._config.stale_after_s:
            return None
        return book

    def note_rest_fallback(self, symbol: str) -> None:
        """The caller fetched `symbol` over REST because latest() had nothing fresh."""
        self._health.note_rest_fallback()

    def ws_lag_ms(self) -> float | None:
        """Smoothed receive time minus exchange time of recent updates; None if none or polling."""
        return self._health.lag_ms

    def describe(self) -> dict[str, Any]:
        now = self._clock.time()
        ages: dict[str, float | None] = {}
        for symbol in self._symbols:
            book = self._books.get(symbol)
            ages[symbol] = None if book is None else round(max(0.0, now - book.received_ts), 3)
        return {"venue": self.venue, **self._health.describe(ages)}

    # ----- lifecycle

    def start(self) -> None:
        """Start the stream thread (or, with use_websocket off, settle in poll state)."""
        if self._stop_requested.is_set():
            raise RuntimeError(f"the {self.venue} book stream was stopped; build a new one")
        if self._thread is not None:
            return
        if not self._config.use_websocket:
            self._health.disable("market_data.use_websocket is off")
            return
        self._thread = threading.Thread(
            target=self._thread_main, name=f"book-stream-{self.venue}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Close the ccxt.pro client and join the thread; safe to call more than once."""
        self._stop_requested.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(wake.set)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                log.warning(
                    "%s: book stream thread still running %.1fs after stop", self.venue, JOIN_TIMEOUT_S
                )

    # ----- the loop thread's side

    def _thread_main(self) -> None:
        try:
            # asyncio.run cancels whatever ccxt.pro left behind and joins the default executor.
            asyncio.run(self._run())
        except Exception as err:
            log.exception("%s: book stream thread died", self.venue)
            if not self._stop_requested.is_set():
                self._fall_back(f"stream thread died: {err}")

    async def _run(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()  # assigned last: stop() reads it to find _wake
        while not self._stop_requested.is_set():
            await self._session()
            await self._pause(self._config.recover_every_s)

    async def _pause(self, seconds: float) -> None:
        """Sleep, waking early on stop()."""
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _new_exchange(self) -> Any:
        exchange = getattr(ccxt.pro, self._exchange_id)(copy.deepcopy(self._ccxt_config))
        if self._markets is not None:
            exchange.set_markets(*self._markets)  # a restore attempt need not reload markets
        return exchange

    async def _session(self) -> None:
        """Run one fresh client until it fails or stop() is called, then tear it down.

        A fresh client per attempt also drops ccxt.pro's cached books and its growing dial
        backoff, so a restore is a clean start.
        """
        exchange = self._new_exchange()
        self._health.session_started()
        watchers = [
            asyncio.create_task(self._watch(exchange, symbol), name=f"watch-{self.venue}-{symbol}")
            for symbol in self._symbols
        ]
        check_every = min(CHECK_EVERY_MAX_S, self._config.stale_after_s / 4)
        try:
            while not self._stop_requested.is_set():
                await self._pause(check_every)
                reason = self._health.failure()
                if reason is not None and not self._stop_requested.is_set():
                    self._fall_back(reason)
                    return
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            if self._markets is None and exchange.markets:
                self._markets = (exchange.markets, exchange.currencies)
            try:
                await asyncio.wait_for(exchange.close(), CLOSE_TIMEOUT_S)
            except Exception as err:  # a client that will not close cleanly must not stop the stream
                log.debug("%s: closing the ccxt.pro client failed: %r", self.venue, err)

    async def _watch(self, exchange: Any, symbol: str) -> None:
        failures = 0
        while True:
            try:
                raw = await exchange.watch_order_book(symbol)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                # ccxt.pro cancelled the future under us (its client closed): an error like any other
                self._health.on_error(symbol, ConnectionError("watch cancelled by the client"))
            except Exception as err:
                self._health.on_error(symbol, err)
                log.debug("%s %s: watch_order_book failed: %r", self.venue, symbol, err)
            else:
                failures = 0
                self._take(symbol, raw)
                continue
            failures += 1
            await asyncio.sleep(min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (failures - 1)))

    def _take(self, symbol: str, raw: Any) -> None:
        """Store a ccxt.pro book as an immutable OrderBook and count it as an update if it is new."""
        now = self._clock.time()
        timestamp_ms = raw.get("timestamp")
        identity = (timestamp_ms, raw.get("nonce"))
        if timestamp_ms is not None and self._seen.get(symbol) == identity:
            return
        self._seen[symbol] = identity
        exchange_ts = timestamp_ms / 1000.0 if timestamp_ms is not None else now
        book = OrderBook(
            venue=self.venue,
            symbol=symbol,
            bids=_levels(raw["bids"], self._depth),
            asks=_levels(raw["asks"], self._depth),
            exchange_ts=exchange_ts,
            received_ts=now,
        )
        self._books[symbol] = book  # one assignment: the tick thread sees the old book or this one
        if self._listeners:
            self._listeners.tell(book)
        lag_ms = max(0.0, (now - exchange_ts) * 1000.0) if timestamp_ms is not None else None
        if self._health.on_update(symbol, lag_ms):
            log.info("%s: order-book stream restored (%s)", self.venue, symbol)

    def _fall_back(self, reason: str) -> None:
        outcome = self._health.fall_back(reason)
        if outcome is Fallback.PROBE_FAILED:
            log.debug("%s: stream restore attempt failed: %s", self.venue, reason)
            return
        if outcome is Fallback.RELAPSE:
            log.info(
                "%s: order-book stream lost again soon after restore (%s); polling REST", self.venue, reason
            )
            return
        text = (
            f"{self.venue} order-book stream down ({reason}); polling REST, "
            f"retrying the stream every {self._config.recover_every_s:g}s"
        )
        log.warning(text)
        if self._alert is not None:
            try:
                self._alert(self._alert_key, text)
            except Exception:  # an alert channel must not break the stream
                log.exception("%s: alert about the stream fallback failed", self.venue)
