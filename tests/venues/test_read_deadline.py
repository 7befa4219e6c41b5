"""A tick's read deadline inside the ccxt venue, and what the breaker counts, on a fake clock.

The exchange here is an in-process stand-in for the ccxt client (the one seam the venue does its
I/O through): each request takes a scripted time on the fake clock, honours the client's
`timeout` as ccxt's does (a request still unanswered when it runs out raises RequestTimeout),
and answers or fails as scripted. The same code against the real ccxt client and the simulator
is in tests/e2e/test_venue_hiccups_sim.py.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import ccxt
import pytest

from arbitrage.clock import FakeClock
from arbitrage.config import VenueConfig
from arbitrage.domain.book import OrderBook
from arbitrage.errors import ReadTooLate, TemporaryVenueError, VenueUnavailable
from arbitrage.venues.ccxt_venue import CcxtVenue
from arbitrage.venues.circuit import CLOSED, OPEN
from arbitrage.venues.read_deadline import MIN_REQUEST_S, attempt_timeout_s

BOOK = {"bids": [[100.0, 1.0]], "asks": [[101.0, 1.0]], "timestamp": None}
DELAYS = (0.1, 0.3, 0.9)  # the venue's default read backoff


@dataclass
class Reply:
    takes_s: float  # how long the venue takes to answer (or to fail)
    error: Exception | None = None


@dataclass
class ScriptedExchange:
    clock: FakeClock
    replies: deque[Reply] = field(default_factory=deque)
    id: str = "binance"
    timeout: int = 10_000  # ms, as ccxt's
    apiKey: str = ""
    markets: dict[str, Any] = field(default_factory=dict)
    last_response_headers: dict[str, str] = field(default_factory=dict)
    timeouts_seen: list[int] = field(default_factory=list)
    started: list[float] = field(default_factory=list)

    def fetch_order_book(self, symbol: str, depth: int) -> dict[str, Any]:
        reply = self.replies.popleft() if self.replies else Reply(0.01)
        self.timeouts_seen.append(self.timeout)
        self.started.append(self.clock.monotonic())
        limit = self.timeout / 1000.0
        if reply.takes_s >= limit:
            self.clock.advance(limit)
            raise ccxt.RequestTimeout(f"binance GET {symbol}")
        self.clock.advance(reply.takes_s)
        if reply.error is not None:
            raise reply.error
        return dict(BOOK)

    def close(self) -> None:
        return None


@dataclass
class Alerts:
    sent: list[tuple[str, str, str]] = field(default_factory=list)

    def __call__(self, key: str, text: str, level: str = "ERROR") -> None:
        self.sent.append((key, text, level))


def venue_with(
    *replies: Reply, failures: int = 5, cooldown_s: float = 30.0
) -> tuple[CcxtVenue, ScriptedExchange, FakeClock, Alerts]:
    clock = FakeClock()
    exchange = ScriptedExchange(clock, deque(replies))
    config = VenueConfig(
        exchange="binance", quote="USDT", circuit_failures=failures, circuit_cooldown_s=cooldown_s
    )
    alerts = Alerts()
    venue = CcxtVenue("binance", config, exchange, clock, read_delays_s=DELAYS, alert=alerts)
    return venue, exchange, clock, alerts


def unavailable(takes_s: float = 0.2) -> Reply:
    return Reply(takes_s, ccxt.ExchangeNotAvailable("binance 503 Service Unavailable"))


# The policy alone ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "deadline", "delay", "expected", "retry", "timeout"),
    [
        (0.0, None, 0.9, 0.5, True, 10.0),  # no deadline: the venue's own timeout
        (0.0, 1.0, 0.0, 0.0, False, 1.0),  # the first attempt: capped to what is left
        (0.0, 20.0, 0.0, 0.0, False, 10.0),  # plenty left: the venue's own timeout
        (0.7, 1.0, 0.1, 0.0, True, pytest.approx(0.2)),  # a retry that fits, capped
        (0.7, 1.0, 0.1, 0.25, True, None),  # a retry slower than what is left: not made
        (0.7, 1.0, 0.3, 0.0, True, None),  # its backoff alone eats what is left
        (1.0 - MIN_REQUEST_S / 2, 1.0, 0.0, 0.0, False, None),  # too little for any request
    ],
)
def test_attempt_timeout(
    now: float, deadline: float | None, delay: float, expected: float, retry: bool, timeout: object
) -> None:
    assert attempt_timeout_s(now, deadline, delay, 10.0, expected, retry) == timeout


# The venue under a deadline ------------------------------------------------------------------


def test_a_read_gets_the_rest_of_the_budget_as_its_timeout() -> None:
    venue, exchange, clock, _ = venue_with(Reply(0.05))
    clock.advance(0.3)  # the tick started 0.3 s ago with a 1 s budget
    venue.order_book("BTC/USDT", 5, deadline=1.0)
    assert exchange.timeouts_seen == [700]
    assert exchange.timeout == 10_000  # the venue's own timeout is back for the next call
    venue.order_book("BTC/USDT", 5)
    assert exchange.timeouts_seen[-1] == 10_000  # no deadline: not capped


def test_a_hanging_read_ends_at_the_deadline_and_does_not_count_against_the_venue() -> None:
    venue, exchange, clock, alerts = venue_with(Reply(30.0), failures=1)
    with pytest.raises(ReadTooLate):
        venue.order_book("BTC/USDT", 5, deadline=0.8)
    assert clock.monotonic() == pytest.approx(0.8)
    assert len(exchange.started) == 1  # no retry: nothing is left
    assert venue.breaker.state == CLOSED and venue.breaker.consecutive_failures == 0
    assert venue.late_reads == 1 and venue.errors == 0 and alerts.sent == []


def test_without_a_deadline_the_same_hang_holds_the_caller_for_every_retry() -> None:
    venue, exchange, clock, _ = venue_with(*(Reply(30.0) for _ in range(4)), failures=10)
    with pytest.raises(TemporaryVenueError):
        venue.order_book("BTC/USDT", 5)
    # Four full timeouts and the backoff in between: what a tick used to wait for one book.
    assert clock.monotonic() == pytest.approx(4 * 10.0 + sum(DELAYS))
    assert len(exchange.started) == 4


def test_retries_stop_when_the_next_could_not_finish_in_time() -> None:
    venue, exchange, clock, _ = venue_with(*(unavailable(0.15) for _ in range(4)), failures=10)
    with pytest.raises(TemporaryVenueError) as raised:
        venue.order_book("BTC/USDT", 5, deadline=1.0)
    assert not isinstance(raised.value, (ReadTooLate, VenueUnavailable))  # a real failure
    # 0.0-0.15 fails, backoff 0.1; 0.25-0.4 fails, backoff 0.3; 0.7-0.85 (capped to 0.3) fails;
    # the last backoff (0.9) would end past the deadline: no fourth request.
    assert exchange.started == pytest.approx([0.0, 0.25, 0.7])
    assert exchange.timeouts_seen == [1000, 750, 300]
    assert clock.monotonic() == pytest.approx(0.85)


def test_a_retry_is_skipped_when_this_venue_is_slower_than_what_is_left() -> None:
    # Its last good read took 0.4 s: after a failure at 0.5 s and 0.1 s of backoff, 0.7 s is
    # left, enough; after the next (at 0.9 s, 0.3 s of backoff), 0.1 s is left: not tried.
    venue, exchange, clock, _ = venue_with(Reply(0.4), unavailable(0.5), unavailable(0.3), failures=10)
    venue.order_book("BTC/USDT", 5)
    started = clock.monotonic()
    with pytest.raises(TemporaryVenueError):
        venue.order_book("BTC/USDT", 5, deadline=started + 1.3)
    assert exchange.started[1:] == pytest.approx([started, started + 0.6])
    assert clock.monotonic() == pytest.approx(started + 0.9)


# What the breaker counts and says -------------------------------------------------------------


def test_an_outage_is_one_opening_then_refusals_and_failed_probes_then_one_closing() -> None:
    venue, exchange, clock, alerts = venue_with(
        *(unavailable(0.1) for _ in range(5)), failures=2, cooldown_s=5.0
    )
    venue._read_delays = ()  # one request per read: the counting is the point here
    with pytest.raises(TemporaryVenueError) as first:
        venue.order_book("BTC/USDT", 5)
    assert not isinstance(first.value, VenueUnavailable)
    with pytest.raises(TemporaryVenueError) as opening:
        venue.order_book("BTC/USDT", 5)
    assert not isinstance(opening.value, VenueUnavailable)  # the failure that opens it is real
    assert venue.breaker.state == OPEN and venue.degraded
    assert [(key, level) for key, _, level in alerts.sent] == [("circuit-open:binance", "WARNING")]
    assert "2 consecutive failures" in alerts.sent[0][1] and "VENUE_DEGRADED" in alerts.sent[0][1]
    for _ in range(3):  # refused without a request: the breaker at work
        with pytest.raises(VenueUnavailable, match="circuit breaker open"):
            venue.order_book("BTC/USDT", 5)
    assert len(exchange.started) == 2
    for _ in range(3):  # each cooldown, one probe; it fails: the same outage
        clock.advance(5.0)
        with pytest.raises(VenueUnavailable, match="failed while the circuit breaker is open"):
            venue.order_book("BTC/USDT", 5)
    assert len(exchange.started) == 5 and len(alerts.sent) == 1
    clock.advance(5.0)
    assert venue.order_book("BTC/USDT", 5).bids  # the probe succeeds
    assert venue.breaker.state == CLOSED and not venue.degraded
    assert [(key, level) for key, _, level in alerts.sent][1:] == [("circuit-closed:binance", "INFO")]
    assert "outage of 20.3s" in alerts.sent[1][1]
    assert venue.breaker.outages == 1 and venue.breaker.trips == 4


def test_a_probe_cut_short_by_the_deadline_leaves_the_next_probe_free() -> None:
    venue, _, clock, alerts = venue_with(
        unavailable(0.1), Reply(30.0), Reply(0.05), failures=1, cooldown_s=5.0
    )
    with pytest.raises(TemporaryVenueError):
        venue.order_book("BTC/USDT", 5)
    clock.advance(5.0)
    with pytest.raises(ReadTooLate):
        venue.order_book("BTC/USDT", 5, deadline=clock.monotonic() + 0.5)
    assert venue.breaker.probe_due  # nothing learnt: the next read may probe at once
    assert venue.order_book("BTC/USDT", 5).bids
    assert venue.breaker.state == CLOSED
    assert [key for key, _, _ in alerts.sent] == ["circuit-open:binance", "circuit-closed:binance"]


@dataclass
class StreamedBooks:
    """A book stream that is healthy (or not) on command, as BookStream answers the venue."""

    clock: FakeClock
    live: bool = True
    state: str = "stream"

    def latest(self, symbol: str) -> OrderBook | None:
        if not self.live:
            return None
        now = self.clock.time()
        return OrderBook("binance", symbol, ((99.0, 1.0),), ((100.0, 1.0),), now, now)

    def note_rest_fallback(self, symbol: str) -> None:
        return None

    def ws_lag_ms(self) -> float | None:
        return None

    def describe(self) -> dict[str, object]:
        return {}

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


def test_a_streaming_venue_still_gets_its_probe_when_the_cooldown_is_over() -> None:
    clock = FakeClock()
    exchange = ScriptedExchange(clock, deque([unavailable(0.1), Reply(0.05)]))
    config = VenueConfig(exchange="binance", quote="USDT", circuit_failures=1, circuit_cooldown_s=5.0)
    stream = StreamedBooks(clock, live=False)
    venue = CcxtVenue("binance", config, exchange, clock, stream, read_delays_s=())
    with pytest.raises(TemporaryVenueError):
        venue.order_book("BTC/USDT", 5)  # the stream is down, REST fails: the breaker opens
    assert venue.breaker.state == OPEN
    stream.live = True
    assert venue.order_book("BTC/USDT", 5).bids[0][0] == 99.0  # streamed, no request
    assert len(exchange.started) == 1
    clock.advance(5.0)
    # Only REST calls go through the breaker: with the stream healthy, nothing would ever probe.
    assert venue.order_book("BTC/USDT", 5).bids[0][0] == 100.0  # this read went over REST
    assert len(exchange.started) == 2 and venue.breaker.state == CLOSED
    assert venue.order_book("BTC/USDT", 5).bids[0][0] == 99.0  # and the stream serves again
