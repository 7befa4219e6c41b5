"""A venue's own order-rate limit: a token bucket of `max_orders_per_s` on top of ccxt's limiter.

ccxt paces all requests by its weight table; exchanges cap orders separately (Upbit's order
group 8-12/s, Binance 50 per 10 s), and a breach there costs a 429 on the very call that must
not fail. An order beyond the rate waits briefly for a token, or is refused before it is sent.
"""

from __future__ import annotations

import threading
from collections import deque

from arbitrage.clock import Clock

MINUTE_S = 60.0


class OrderRateLimiter:
    def __init__(self, per_second: float, clock: Clock, max_wait_s: float = 0.5) -> None:
        if per_second <= 0:
            raise ValueError(f"per_second must be positive, not {per_second}")
        self._rate = per_second
        # A burst of up to one second's worth (at least one order), as exchanges count per second.
        self._capacity = max(1.0, per_second)
        self._tokens = self._capacity
        self._clock = clock
        self._max_wait_s = max_wait_s
        self._updated = clock.monotonic()
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        """Take a token, sleeping up to max_wait_s for one; False (nothing taken) if none comes in time."""
        with self._lock:
            now = self._clock.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            # Reserve the token now (the balance may go negative) so that concurrent callers queue
            # behind each other instead of all waking for the same token.
            wait = 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self._rate
            if wait > self._max_wait_s:
                return False
            self._tokens -= 1.0
            self._sent.append(now + wait)
        if wait > 0:
            self._clock.sleep(wait)
        return True

    @property
    def orders_last_minute(self) -> int:
        """Orders let through in the last 60 seconds."""
        with self._lock:
            cutoff = self._clock.monotonic() - MINUTE_S
            while self._sent and self._sent[0] < cutoff:
                self._sent.popleft()
            return len(self._sent)
