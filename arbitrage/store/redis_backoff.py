"""When to try Redis again after a failure: exponential delays on the monotonic clock, reset on success."""

from __future__ import annotations

from arbitrage.clock import Clock

MAX_BACKOFF_S = 10.0
# Enough doublings to reach any sane cap; bounding the exponent keeps days of failures from overflowing.
_MAX_DOUBLINGS = 30


class ReconnectBackoff:
    """Gates network attempts after failures so an absent peer costs the loop nothing.

    The first failure waits `initial_s`, each further consecutive failure doubles the wait up to
    `max_s`; one success resets it. No jitter: a single bot instance has no herd to spread.
    """

    def __init__(self, clock: Clock, initial_s: float = 1.0, max_s: float = MAX_BACKOFF_S) -> None:
        if initial_s <= 0:
            raise ValueError(f"initial_s must be > 0, got {initial_s}")
        self._clock = clock
        self._initial_s = initial_s
        self._max_s = max(max_s, initial_s)
        self._failures = 0
        self._retry_at = 0.0

    @property
    def failures(self) -> int:
        """Consecutive failures since the last success."""
        return self._failures

    @property
    def waiting(self) -> bool:
        """True while a failure's delay has not yet passed: do not touch the network."""
        return self._failures > 0 and self._clock.monotonic() < self._retry_at

    def failed(self) -> float:
        """Record a failure; return the delay before the next attempt is allowed."""
        delay = min(self._initial_s * 2.0 ** min(self._failures, _MAX_DOUBLINGS), self._max_s)
        self._failures += 1
        self._retry_at = self._clock.monotonic() + delay
        return delay

    def succeeded(self) -> None:
        self._failures = 0
        self._retry_at = 0.0
