"""The pure parts of the real venues: circuit breaker, order-rate limiter, error classification."""

from __future__ import annotations

import ccxt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbitrage.clock import FakeClock
from arbitrage.errors import PermanentVenueError, RateLimited, TemporaryVenueError
from arbitrage.venues.ccxt_errors import Failure, classify, reason, retry_after_s, scrub, venue_error
from arbitrage.venues.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from arbitrage.venues.order_rate import OrderRateLimiter

# Circuit breaker ---------------------------------------------------------------------------


def tripped(clock: FakeClock, failures: int = 3, cooldown: float = 10.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failures, cooldown, clock)
    for _ in range(failures):
        assert breaker.admit() is None
        breaker.failed()
    return breaker


def test_breaker_opens_after_n_consecutive_failures_only() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(3, 10.0, clock)
    for _ in range(2):
        breaker.failed()
    breaker.succeeded()  # a success in between resets the count
    breaker.failed()
    breaker.failed()
    assert breaker.state == CLOSED and not breaker.degraded
    breaker.failed()
    assert breaker.state == OPEN and breaker.degraded and breaker.trips == 1


def test_open_breaker_refuses_until_the_cooldown_then_lets_one_probe_through() -> None:
    clock = FakeClock()
    breaker = tripped(clock)
    refusal = breaker.admit()
    assert refusal is not None and not refusal.rate_limited and refusal.wait_s == pytest.approx(10.0)
    clock.advance(9.9)
    assert breaker.admit() is not None
    clock.advance(0.2)
    assert breaker.admit() is None  # the probe
    assert breaker.state == HALF_OPEN and breaker.degraded
    second = breaker.admit()
    assert second is not None and "probe" in second.text  # one probe at a time
    breaker.succeeded()
    assert breaker.state == CLOSED and not breaker.degraded and breaker.admit() is None


def test_a_failed_probe_opens_the_breaker_for_another_cooldown() -> None:
    clock = FakeClock()
    breaker = tripped(clock)
    clock.advance(10.0)
    assert breaker.admit() is None
    breaker.failed()
    assert breaker.state == OPEN and breaker.trips == 2
    clock.advance(5.0)
    assert breaker.admit() is not None
    clock.advance(5.0)
    assert breaker.admit() is None


def test_a_probe_that_never_reports_back_is_replaced_after_a_cooldown() -> None:
    clock = FakeClock()
    breaker = tripped(clock)
    clock.advance(10.0)
    assert breaker.admit() is None  # its caller dies without reporting
    clock.advance(10.0)
    assert breaker.admit() is None


def test_retry_after_pause_refuses_every_call_until_it_passes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(5, 10.0, clock)
    breaker.pause(2.5)
    refusal = breaker.admit()
    assert refusal is not None and refusal.rate_limited and refusal.wait_s == pytest.approx(2.5)
    assert breaker.degraded and breaker.state == CLOSED
    breaker.pause(1.0)  # a shorter pause never shortens a longer one
    clock.advance(2.4)
    assert breaker.admit() is not None
    clock.advance(0.2)
    assert breaker.admit() is None and not breaker.degraded


# Order-rate limiter -------------------------------------------------------------------------


def test_order_rate_allows_a_burst_then_waits_briefly_then_refuses() -> None:
    clock = FakeClock()
    limiter = OrderRateLimiter(4.0, clock, max_wait_s=0.5)
    assert all(limiter.acquire() for _ in range(4))  # a second's worth at once
    assert clock.monotonic() == 0.0
    assert limiter.acquire()  # the fifth waits a quarter second for its token
    assert clock.monotonic() == pytest.approx(0.25)
    assert limiter.acquire()
    assert clock.monotonic() == pytest.approx(0.5)
    limiter_busy = OrderRateLimiter(1.0, FakeClock(), max_wait_s=0.5)
    assert limiter_busy.acquire() and not limiter_busy.acquire()  # a full second away: refused


def test_orders_last_minute_counts_what_was_let_through() -> None:
    clock = FakeClock()
    limiter = OrderRateLimiter(10.0, clock)
    for _ in range(7):
        limiter.acquire()
    assert limiter.orders_last_minute == 7
    clock.advance(61.0)
    assert limiter.orders_last_minute == 0


@settings(max_examples=50, deadline=None)
@given(rate=st.floats(min_value=0.5, max_value=50), gaps=st.lists(st.floats(0, 2), min_size=1, max_size=60))
def test_order_rate_never_exceeds_burst_plus_rate_times_time(rate: float, gaps: list[float]) -> None:
    clock = FakeClock()
    limiter = OrderRateLimiter(rate, clock, max_wait_s=0.5)
    sent = 0
    for gap in gaps:
        clock.advance(gap)
        sent += limiter.acquire()
    assert sent <= max(1.0, rate) + rate * clock.monotonic() + 1e-6


# ccxt errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ccxt.RateLimitExceeded("429"), Failure.RATE_LIMIT),
        (ccxt.DDoSProtection("418"), Failure.RATE_LIMIT),
        (ccxt.RequestTimeout("slow"), Failure.TEMPORARY),
        (ccxt.ExchangeNotAvailable("503"), Failure.TEMPORARY),
        (ccxt.OnMaintenance("down"), Failure.TEMPORARY),
        (ccxt.NetworkError("reset"), Failure.TEMPORARY),
        (ccxt.BadResponse("garbage"), Failure.TEMPORARY),
        (ccxt.OrderNotFound("-2013"), Failure.NOT_FOUND),
        (ccxt.AuthenticationError("bad key"), Failure.AUTH),
        (ccxt.PermissionDenied("no trading"), Failure.AUTH),
        (ccxt.InsufficientFunds("poor"), Failure.REFUSED),
        (ccxt.InvalidOrder("filter"), Failure.REFUSED),
        (ccxt.DuplicateOrderId("dup"), Failure.REFUSED),
        (ccxt.BadSymbol("DOGE"), Failure.REFUSED),
        (ccxt.ExchangeError("create_ask_error"), Failure.REFUSED),
        (KeyError("bug"), Failure.UNEXPECTED),
    ],
)
def test_ccxt_errors_are_classified(error: Exception, kind: Failure) -> None:
    assert classify(error) is kind


def test_read_errors_become_the_bots_own() -> None:
    limited = venue_error("binance", ccxt.DDoSProtection("429"), 30.0)
    assert isinstance(limited, RateLimited) and limited.retry_after_s == 30.0
    assert type(venue_error("binance", ccxt.RequestTimeout("t"), None)) is TemporaryVenueError
    assert type(venue_error("binance", ccxt.BadSymbol("x"), None)) is PermanentVenueError


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "30"}, 30.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),  # an HTTP date, 10 s after "now"
        ({"Retry-After": "soon"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_in_seconds_or_as_a_date(headers: dict[str, str] | None, seconds: float | None) -> None:
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert retry_after_s(headers, now) == seconds


def test_messages_lose_their_secrets() -> None:
    url = "binance POST http://127.0.0.1:1/api/v3/order?symbol=BTCUSDT&timestamp=1&signature=abcdef0123 503"
    assert "abcdef0123" not in scrub(url) and "signature=***" in scrub(url)
    assert scrub("Authorization: Bearer eyJhbGciOi.eyJhY2Nlc3N.sig") == "Authorization: Bearer ***"
    assert "my-api-key" not in reason(ccxt.ExchangeError("key my-api-key refused"), ["my-api-key"])
    assert len(reason(ccxt.ExchangeError("x" * 1000))) <= 300
