"""A tick's reads under one deadline, and what the feed makes of the books that did not come.

The venues here answer from a script: each read takes a set time (on a fake clock for the
in-turn reads, on the real one for the per-venue workers) and returns a book or raises.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from arbitrage.clock import Clock, FakeClock, SystemClock
from arbitrage.domain.book import OrderBook
from arbitrage.errors import ReadTooLate, TemporaryVenueError, VenueError, VenueUnavailable
from arbitrage.runtime.market_feed import FixedFx, MarketFeed, VenueFx
from arbitrage.runtime.tick_reads import JOIN_GRACE_S, BookRead, TickReader

Script = Callable[[str], VenueError | None]  # symbol -> the error to raise, or None for a book


@dataclass
class ScriptedVenue:
    name: str
    clock: Clock
    takes_s: float = 0.0
    script: Script = lambda symbol: None
    quote: str = "KRW"
    taker_fee_pct: float = 0.05
    degraded: bool = False
    orders_last_minute: int = 0
    deadlines: list[float | None] = field(default_factory=list)

    def order_book(self, symbol: str, depth: int, deadline: float | None = None) -> OrderBook:
        self.deadlines.append(deadline)
        self.clock.sleep(self.takes_s)
        error = self.script(symbol)
        if error is not None:
            raise error
        now = self.clock.time()
        return OrderBook(self.name, symbol, ((100.0, 1.0),), ((101.0, 1.0),), now, now)

    def ws_lag_ms(self) -> float | None:
        return None


def reads(venue: str, *assets: str) -> list[BookRead]:
    return [BookRead((venue, asset), venue, f"{asset}/KRW", 5) for asset in assets]


# In turn, on a fake clock -----------------------------------------------------------------------


def test_reads_in_turn_stop_at_the_deadline_and_pass_it_to_the_venue() -> None:
    clock = FakeClock()
    venue = ScriptedVenue("upbit", clock, takes_s=0.3)
    reader = TickReader({"upbit": venue}, clock, budget_s=0.8, concurrent=False)
    got = reader.read(reads("upbit", "BTC", "ETH", "XRP", "SOL"), started=clock.monotonic())
    # 0.0-0.3, 0.3-0.6, 0.6-0.9 (the venue itself keeps to the deadline; this one overran it),
    # and at 0.9 the budget is spent: the fourth is not even asked for.
    assert sorted(got.books) == [("upbit", "BTC"), ("upbit", "ETH"), ("upbit", "XRP")]
    assert list(got.errors) == [("upbit", "SOL")] and isinstance(got.errors[("upbit", "SOL")], ReadTooLate)
    assert venue.deadlines == [pytest.approx(0.8)] * 3


def test_without_a_budget_every_read_is_made() -> None:
    clock = FakeClock()
    venue = ScriptedVenue("upbit", clock, takes_s=5.0)
    got = TickReader({"upbit": venue}, clock, None, concurrent=False).read(reads("upbit", "BTC", "ETH"), 0.0)
    assert len(got.books) == 2 and not got.errors and venue.deadlines == [None, None]


# One worker per venue, on the real clock ---------------------------------------------------------


def test_a_slow_venue_costs_its_own_books_and_not_the_tick() -> None:
    clock = SystemClock()
    slow = ScriptedVenue("upbit", clock, takes_s=0.5)
    fast = ScriptedVenue("binance", clock, takes_s=0.05)
    reader = TickReader({"upbit": slow, "binance": fast}, clock, budget_s=0.3, concurrent=True)
    try:
        started = clock.monotonic()
        got = reader.read(reads("upbit", "BTC", "ETH") + reads("binance", "BTC", "ETH"), started)
        took = clock.monotonic() - started
        assert took < 0.3 + JOIN_GRACE_S + 0.1, took  # the deadline, not the slow venue's 1 s
        assert sorted(got.books) == [("binance", "BTC"), ("binance", "ETH")]  # 0.1 s, both in time
        assert sorted(got.errors) == [("upbit", "BTC"), ("upbit", "ETH")]
        assert all(isinstance(err, ReadTooLate) for err in got.errors.values())
    finally:
        reader.close()


def test_venues_are_read_at_once() -> None:
    clock = SystemClock()
    venues = {name: ScriptedVenue(name, clock, takes_s=0.2) for name in ("upbit", "binance", "bithumb")}
    reader = TickReader(venues, clock, budget_s=1.0, concurrent=True)
    try:
        started = clock.monotonic()
        got = reader.read([r for name in venues for r in reads(name, "BTC")], started)
        assert len(got.books) == 3 and clock.monotonic() - started < 0.5  # not 0.6 in turn
    finally:
        reader.close()


# The feed: books carried over, and what counts as a live error ------------------------------------


def feed_over(venue: ScriptedVenue, clock: FakeClock, budget_s: float | None = 0.8) -> MarketFeed:
    symbols = {("upbit", "BTC"): "BTC/KRW", ("upbit", "ETH"): "ETH/KRW"}
    reader = TickReader({"upbit": venue}, clock, budget_s, concurrent=False)
    return MarketFeed({"upbit": venue}, symbols, 5, FixedFx("KRW", {}), clock, reader=reader)


@pytest.mark.parametrize(
    ("error", "live_errors"),
    [
        (TemporaryVenueError("upbit", "503 Service Unavailable"), 1),  # a real failure
        (VenueUnavailable("upbit", "not sent: circuit breaker open"), 0),  # the breaker at work
        (ReadTooLate("upbit", "no answer within the tick's read budget"), 0),  # the budget at work
    ],
)
def test_a_book_that_does_not_come_is_carried_and_only_a_failure_counts(
    error: VenueError, live_errors: int
) -> None:
    clock = FakeClock()
    failing = threading.Event()
    venue = ScriptedVenue(
        "upbit", clock, script=lambda s: error if failing.is_set() and s == "ETH/KRW" else None
    )
    feed = feed_over(venue, clock)
    first = feed.snapshot()
    assert not first.carried and feed.errors_last_tick == 0
    clock.advance(1.0)
    failing.set()
    second = feed.snapshot()
    assert feed.errors_last_tick == live_errors
    assert second.carried == frozenset({("upbit", "ETH")})
    eth = second.book("upbit", "ETH")
    assert eth is first.book("upbit", "ETH") and eth is not None and eth.age_ms(second.ts) == 1000.0
    btc = second.book("upbit", "BTC")
    assert btc is not None and btc.age_ms(second.ts) == 0.0


def test_late_books_are_logged_once_per_episode(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    venue = ScriptedVenue("upbit", clock, takes_s=0.9)
    feed = feed_over(venue, clock)
    with caplog.at_level("INFO", logger="arbitrage.live_loop"):
        for _ in range(3):
            feed.snapshot()  # BTC takes 0.9 s of the 0.8 s budget: ETH is never asked for
            assert feed.late_last_tick == 1 and feed.errors_last_tick == 0
        venue.takes_s = 0.1
        feed.snapshot()
    texts = [r.getMessage() for r in caplog.records]
    assert texts == [
        "upbit: ETH/KRW not read within the tick's read budget (800 ms); stale this tick",
        "upbit: books on time again after 3 late tick(s)",
    ]


def test_the_fx_rate_is_read_with_the_books_and_ages_when_it_does_not_come() -> None:
    clock = FakeClock()
    late = threading.Event()
    venue = ScriptedVenue(
        "upbit",
        clock,
        script=lambda s: ReadTooLate("upbit", "late") if late.is_set() and s == "USDT/KRW" else None,
    )
    symbols = {("upbit", "BTC"): "BTC/KRW"}
    reader = TickReader({"upbit": venue}, clock, 0.8, concurrent=False)
    feed = MarketFeed({"upbit": venue}, symbols, 5, VenueFx("KRW", "upbit", "USDT/KRW"), clock, reader=reader)
    first = feed.snapshot()
    assert first.fx["USDT"] == 100.5 and first.fx_age_ms == 0.0
    late.set()
    clock.advance(3.0)
    second = feed.snapshot()
    assert second.fx["USDT"] == 100.5 and second.fx_age_ms == 3000.0  # safety's fx.max_age_ms judges
    assert not second.carried and feed.errors_last_tick == 0
