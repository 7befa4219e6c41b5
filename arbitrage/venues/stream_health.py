"""The health of one venue's order-book stream: "stream" or "poll", its counters and lag.

It decides when the stream has failed, when a fresh one has proved live again, and whether a
failure opens a new alert episode; the stream does the I/O, logging and alerting around it.
"""

from __future__ import annotations

import enum
import threading
from typing import Any

from arbitrage.clock import Clock
from arbitrage.config import MarketDataConfig

STREAM = "stream"
POLL = "poll"

# A fresh connection's first message can be a snapshot the server sends on subscribe whether or
# not its stream is live (Upbit does): only a second update on one symbol proves the stream.
UPDATES_TO_RESTORE = 2
LAG_EWMA_WEIGHT = 0.2  # of the newest sample


class Fallback(enum.Enum):
    NEW_EPISODE = "new_episode"  # the stream was healthy: warn and alert
    RELAPSE = "relapse"  # lost again soon after a restore: the same episode, no second alert
    PROBE_FAILED = "probe_failed"  # already polling: a restore attempt did not prove the stream


class StreamHealth:
    """Written by the stream's loop thread; read (state, lag, describe) by the tick thread.

    Every field is replaced by a single assignment, so a reader sees one value or the other.
    """

    def __init__(self, config: MarketDataConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        # A failure this soon after a restore is the same outage still going on.
        self._settle_s = 2 * config.recover_every_s + config.stale_after_s
        self.state = STREAM
        self.since = clock.time()
        self.sessions = 0
        self.errors = 0
        self.fallbacks = 0
        self.restores = 0
        self.last_error: str | None = None
        self.last_fallback_reason: str | None = None
        self._lag_ms: float | None = None
        self._restored_mono: float | None = None
        self._session_mono = clock.monotonic()
        self._last_update_mono: float | None = None
        self._session_updates: dict[str, int] = {}
        self._consecutive_errors: dict[str, int] = {}
        self._rest_lock = threading.Lock()
        self.rest_fallbacks = 0

    @property
    def reconnects(self) -> int:
        """Fresh clients started after the first one (restore attempts)."""
        return max(0, self.sessions - 1)

    @property
    def lag_ms(self) -> float | None:
        return self._lag_ms if self.state == STREAM else None

    def session_started(self) -> None:
        self.sessions += 1
        self._session_mono = self._clock.monotonic()
        self._last_update_mono = None
        self._session_updates = {}
        self._consecutive_errors = {}

    def on_update(self, symbol: str, lag_ms: float | None) -> bool:
        """A new book arrived on the current client; True when it restores the stream."""
        self._last_update_mono = self._clock.monotonic()
        self._consecutive_errors[symbol] = 0
        self._session_updates[symbol] = self._session_updates.get(symbol, 0) + 1
        if lag_ms is not None:
            lag = self._lag_ms
            self._lag_ms = lag_ms if lag is None else lag + LAG_EWMA_WEIGHT * (lag_ms - lag)
        if self.state == POLL and self._session_updates[symbol] >= UPDATES_TO_RESTORE:
            self.state = STREAM
            self.since = self._clock.time()
            self.restores += 1
            self._restored_mono = self._clock.monotonic()
            return True
        return False

    def on_error(self, symbol: str, error: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{type(error).__name__}: {error}"[:300]
        self._consecutive_errors[symbol] = self._consecutive_errors.get(symbol, 0) + 1

    def failure(self) -> str | None:
        """Why the current client has failed (too many errors in a row, or silence), or None."""
        threshold = self._config.ws_error_threshold
        for symbol, count in self._consecutive_errors.items():
            if count >= threshold:
                return f"{count} consecutive errors on {symbol} (last: {self.last_error})"
        last = self._last_update_mono if self._last_update_mono is not None else self._session_mono
        silent = self._clock.monotonic() - last
        if silent > self._config.stale_after_s:
            return f"no book update for {silent:.1f}s"
        return None

    def fall_back(self, reason: str) -> Fallback:
        """The current client failed: go (or stay) in poll state; what kind of failure it was."""
        self.last_fallback_reason = reason
        if self.state == POLL:
            return Fallback.PROBE_FAILED
        now = self._clock.monotonic()
        relapse = self._restored_mono is not None and now - self._restored_mono < self._settle_s
        self.state = POLL
        self.since = self._clock.time()
        self.fallbacks += 1
        self._lag_ms = None
        return Fallback.RELAPSE if relapse else Fallback.NEW_EPISODE

    def disable(self, reason: str) -> None:
        """Polling for good, with no stream to restore (e.g. market_data.use_websocket is off)."""
        self.state = POLL
        self.since = self._clock.time()
        self.last_fallback_reason = reason

    def note_rest_fallback(self) -> None:
        with self._rest_lock:  # the tick thread and REST worker threads may both count
            self.rest_fallbacks += 1

    def describe(self, update_ages_s: dict[str, float | None]) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.since,
            "reconnects": self.reconnects,
            "errors": self.errors,
            "rest_fallbacks": self.rest_fallbacks,
            "fallbacks": self.fallbacks,
            "restores": self.restores,
            "last_error": self.last_error,
            "last_fallback_reason": self.last_fallback_reason,
            "last_update_age_s": update_ages_s,
            "ws_lag_ms": self.lag_ms,
        }
