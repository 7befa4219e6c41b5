"""A venue's circuit breaker: stop calling a venue that keeps failing, and honour its Retry-After.

closed -> (N consecutive temporary failures) -> open -> (cooldown) -> half-open: one probe call
goes through; its success closes the breaker, its failure opens it for another cooldown. Apart
from that, a venue that answered 429 with Retry-After is paused until then: every call fails
fast, because calling inside the window is what escalates a 429 into a 418 ban.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from arbitrage.clock import Clock

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call may not go ahead now, and how long until it may."""

    text: str
    wait_s: float
    rate_limited: bool  # paused by the venue's Retry-After (else the breaker is open)


class CircuitBreaker:
    def __init__(self, failures: int, cooldown_s: float, clock: Clock) -> None:
        if failures < 1:
            raise ValueError(f"failures must be at least 1, not {failures}")
        self._threshold = failures
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None
        self._paused_until = 0.0
        self.trips = 0  # how many times it opened

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    @property
    def degraded(self) -> bool:
        """Open, probing, or paused by a Retry-After: the venue should not get new entries."""
        with self._lock:
            return self._state != CLOSED or self._clock.monotonic() < self._paused_until

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._consecutive

    def paused_for_s(self) -> float:
        with self._lock:
            return max(0.0, self._paused_until - self._clock.monotonic())

    def admit(self) -> Refusal | None:
        """None when a call may go ahead (it must then report succeeded() or failed())."""
        with self._lock:
            now = self._clock.monotonic()
            if now < self._paused_until:
                wait = self._paused_until - now
                return Refusal(f"paused by the venue's Retry-After for {wait:.1f}s more", wait, True)
            if self._state == CLOSED:
                return None
            since = now - self._opened_at
            if self._state == OPEN and since < self._cooldown_s:
                wait = self._cooldown_s - since
                return Refusal(
                    f"circuit breaker open after {self._consecutive} consecutive failures "
                    f"(next probe in {wait:.1f}s)",
                    wait,
                    False,
                )
            # Cooldown over: one probe at a time; a probe that never reported back (its caller
            # died) is replaced after another cooldown.
            if self._probe_started is not None and now - self._probe_started < self._cooldown_s:
                return Refusal(
                    "circuit breaker half-open: a probe call is in flight", self._cooldown_s, False
                )
            self._state = HALF_OPEN
            self._probe_started = now
            return None

    def succeeded(self) -> None:
        with self._lock:
            self._state = CLOSED
            self._consecutive = 0
            self._probe_started = None

    def failed(self) -> None:
        with self._lock:
            self._consecutive += 1
            self._probe_started = None
            if self._state == HALF_OPEN or self._consecutive >= self._threshold:
                if self._state != OPEN:
                    self.trips += 1
                self._state = OPEN
                self._opened_at = self._clock.monotonic()

    def pause(self, seconds: float) -> None:
        """The venue asked for `seconds` of silence (Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock.monotonic() + max(0.0, seconds))

    def describe(self) -> dict[str, object]:
        with self._lock:
            now = self._clock.monotonic()
            return {
                "state": self._state,
                "consecutive_failures": self._consecutive,
                "trips": self.trips,
                "paused_s": round(max(0.0, self._paused_until - now), 3),
            }
