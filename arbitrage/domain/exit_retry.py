"""Backing off an exit a venue keeps refusing: each failed attempt doubles the wait, up to a cap.

An exit that fails (a leg refused, the other unwound) costs the unwind's slippage and fees; sent
again every tick it loses that much several times a second. The runtime records each failure
per position (`ExitRetry`); the exit engines read it and hold the next attempt back until
`retry_delay_s` after the last failure has passed. Pure: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ExitRetry:
    """The failed exit attempts of one position since its last success."""

    position_id: str
    failures: int  # consecutive failed attempts, >= 1
    first_failed_at: float
    last_failed_at: float
    why: str  # what the last failure was, for the logs and the alert

    def after(self, failed_at: float, why: str) -> ExitRetry:
        """This record with one more failure at `failed_at`."""
        return ExitRetry(self.position_id, self.failures + 1, self.first_failed_at, failed_at, why)

    def retry_at(self, base_s: float, cap_s: float) -> float:
        """When the next attempt may go out."""
        return self.last_failed_at + retry_delay_s(self.failures, base_s, cap_s)


def first_failure(position_id: str, failed_at: float, why: str) -> ExitRetry:
    return ExitRetry(position_id, 1, failed_at, failed_at, why)


def retry_delay_s(failures: int, base_s: float, cap_s: float) -> float:
    """The wait after the `failures`-th consecutive failure: base, 2x base, 4x base, ... at most cap."""
    if failures <= 0:
        return 0.0
    # 2**exponent overflows a float long before it matters: past the cap, the cap is the answer.
    exponent = min(failures - 1, 60)
    return float(min(cap_s, base_s * 2.0**exponent))
