"""How much of a tick's read budget one venue request may use.

A tick's reads share a deadline (a monotonic instant). Each request gets the venue's own timeout
capped to what is left of the budget, and a retry is made only when, after its backoff, enough
is left for a request as long as this venue's recent ones: a retry that cannot finish in time
would only stretch the tick. Pure: the caller passes the time.
"""

from __future__ import annotations

MIN_REQUEST_S = 0.05  # below this, no request to a remote venue is worth starting
LATENCY_EWMA_WEIGHT = 0.3  # of the newest sample, for the expected duration of a request


def attempt_timeout_s(
    now: float,
    deadline: float | None,
    delay_s: float,
    timeout_s: float,
    expected_s: float,
    retry: bool,
) -> float | None:
    """The timeout for a request that starts after `delay_s`, or None when it should not be made.

    No deadline: the venue's own timeout. The first attempt goes ahead whenever MIN_REQUEST_S
    is left; a retry only when the request it repeats is expected to finish (expected_s).
    """
    if deadline is None:
        return timeout_s
    left = deadline - now - delay_s
    need = max(MIN_REQUEST_S, expected_s) if retry else MIN_REQUEST_S
    if left < need:
        return None
    return min(timeout_s, left)


def smoothed(previous: float | None, sample: float) -> float:
    """The exponentially weighted mean of request durations after one more sample."""
    return sample if previous is None else previous + LATENCY_EWMA_WEIGHT * (sample - previous)
