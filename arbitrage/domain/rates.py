"""Event rates over a sliding window: orders a venue took per minute, safety rejections and live
errors per minute (for the watchdog). Pure: the caller passes the time in."""

from __future__ import annotations

import math
from collections import deque


class RateWindow:
    """Counts events in the last `window_s` seconds, in one-second buckets.

    Memory is bounded by the window (at most window_s + 1 buckets) and each bucket is appended and
    evicted once, so add() and per_minute() are O(1) amortised. The price of buckets is up to one
    second of imprecision at the window's trailing edge.
    """

    def __init__(self, window_s: float = 60.0) -> None:
        if not window_s > 0 or math.isinf(window_s):
            raise ValueError(f"window_s must be a positive finite number of seconds, not {window_s!r}")
        self._window_s = window_s
        self._buckets: deque[list[int]] = deque()  # [second, count], oldest first
        self._total = 0

    @property
    def window_s(self) -> float:
        return self._window_s

    def add(self, now: float, n: int = 1) -> None:
        """Record n events at monotonic time `now`."""
        if n < 0:
            raise ValueError(f"cannot add a negative number of events ({n})")
        if n == 0:
            return
        second = math.floor(now)
        self._evict(now)
        # A clock that steps back a little lands in the newest bucket rather than breaking the order.
        if self._buckets and self._buckets[-1][0] >= second:
            self._buckets[-1][1] += n
        else:
            self._buckets.append([second, n])
        self._total += n

    def count(self, now: float) -> int:
        """Events within the window ending at `now`."""
        self._evict(now)
        return self._total

    def per_minute(self, now: float) -> float:
        """The window's count scaled to events per minute."""
        return self.count(now) * 60.0 / self._window_s

    def _evict(self, now: float) -> None:
        horizon = now - self._window_s
        while self._buckets and self._buckets[0][0] <= horizon:
            self._total -= self._buckets.popleft()[1]
