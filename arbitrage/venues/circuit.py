"""A venue's circuit breaker: stop calling a venue that keeps failing, and honour its Retry-After.

closed -> (N consecutive temporary failures) -> open -> (cooldown) -> half-open: one probe call
goes through; its success closes the breaker, its failure opens it for another cooldown. Apart
from that, a venue that answered 429 with Retry-After is paused until then: every call fails
fast, because calling inside the window is what escalates a 429 into a 418 ban.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass

from arbitrage.clock import Clock

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class Outcome(enum.Enum):
    """What one reported call did to the breaker: callers log and alert the transitions."""

    CLOSED = "closed"  # it stays (or was) closed
    OPENED = "opened"  # this failure opened a closed breaker: a new outage
    STILL_OPEN = "still_open"  # the probe failed (or a call of the same outage): open again
    RECOVERED = "recovered"  # this success closed an open or half-open breaker


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
        self._outage_started = 0.0
        self._probe_started: float | None = None
        self._paused_until = 0.0
        self.trips = 0  # how many times it opened, failed probes included
        self.outages = 0  # how many times it opened from closed
        self.last_outage_s = 0.0  # how long the last outage lasted, once it is over

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

    @property
    def probe_due(self) -> bool:
        """Open with its cooldown over and no probe in flight: the next call would be the probe."""
        with self._lock:
            now = self._clock.monotonic()
            if self._state == CLOSED or now < self._paused_until:
                return False
            if self._state == OPEN:
                return now - self._opened_at >= self._cooldown_s
            return self._probe_started is None or now - self._probe_started >= self._cooldown_s

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

    def succeeded(self) -> Outcome:
        with self._lock:
            was = self._state
            self._state = CLOSED
            self._consecutive = 0
            self._probe_started = None
            if was == CLOSED:
                return Outcome.CLOSED
            self.last_outage_s = max(0.0, self._clock.monotonic() - self._outage_started)
            return Outcome.RECOVERED

    def failed(self) -> Outcome:
        with self._lock:
            was = self._state
            self._consecutive += 1
            self._probe_started = None
            if was == HALF_OPEN or self._consecutive >= self._threshold:
                if was != OPEN:
                    self.trips += 1
                if was == CLOSED:
                    self.outages += 1
                    self._outage_started = self._clock.monotonic()
                self._state = OPEN
                self._opened_at = self._clock.monotonic()
            if self._state == CLOSED:
                return Outcome.CLOSED
            return Outcome.OPENED if was == CLOSED else Outcome.STILL_OPEN

    def abandoned(self) -> None:
        """The call was given up by its caller (its deadline came first): nothing learnt about the
        venue, but a probe's slot is free again."""
        with self._lock:
            self._probe_started = None

    def pause(self, seconds: float) -> None:
        """The venue asked for `seconds` of silence (Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock.monotonic() + max(0.0, seconds))

    def describe(self) -> dict[str, object]:
        with self._lock:
            now = self._clock.monotonic()
            detail: dict[str, object] = {
                "state": self._state,
                "consecutive_failures": self._consecutive,
                "trips": self.trips,
                "outages": self.outages,
                "paused_s": round(max(0.0, self._paused_until - now), 3),
            }
            if self._state != CLOSED:
                detail["open_for_s"] = round(max(0.0, now - self._outage_started), 3)
                detail["next_probe_s"] = round(max(0.0, self._cooldown_s - (now - self._opened_at)), 3)
            return detail
