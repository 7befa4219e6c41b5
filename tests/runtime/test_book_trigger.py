"""The book-triggered loop on a fake clock: updates coalesce into one next tick, min_gap spaces
ticks, a full pass runs every interval, a stop wakes a waiting loop; the feed reads only the changed
books; and the mock market's own feed (mock.updates_per_s) drives the same path without a socket."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from arbitrage.clock import Clock, SystemClock
from arbitrage.config import AppConfig
from arbitrage.domain.book import BookListener, OrderBook
from arbitrage.runtime.book_events import BookEvents
from arbitrage.runtime.loop import TickReport
from arbitrage.runtime.wiring import Bot, build_bot
from arbitrage.venues.base import AlertFn, Venues
from arbitrage.venues.build import build_mock_venues
from tests.runtime.mock_bot import Recorder, RecordingClock, TickLog, mock_config
from tests.waiting import wait_until

GAP_S = 0.005


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the halt file is looked up in the working directory


def book(venue: str = "upbit", symbol: str = "BTC/KRW") -> OrderBook:
    return OrderBook(venue, symbol, ((100.0, 1.0),), ((101.0, 1.0),), 0.0, 0.0)


def signalling_venues(
    config: AppConfig,
    clock: Clock,
    env: Mapping[str, str],
    alert: AlertFn,
    listeners: Sequence[BookListener],
    recorders: Sequence[BookListener],
) -> Venues:
    """The mock market stepped before each tick, said to signal: the test itself tells the listeners."""
    return replace(build_mock_venues(config, clock), signals_books=True)


class Updates:
    """A tick hook that delivers book updates while chosen ticks run (after their snapshot)."""

    def __init__(self, during: Mapping[int, Sequence[OrderBook]]) -> None:
        self.during = during
        self.listener: BookListener | None = None

    def after_tick(self, report: TickReport) -> int | None:
        assert self.listener is not None
        for b in self.during.get(report.tick, ()):
            self.listener(b)
        return None


def book_bot(
    tmp_path: Path,
    hooks: list[Any],
    clock: Clock,
    max_ticks: int | None,
    interval_s: float = 1.0,
    **loop: Any,
) -> Bot:
    config = mock_config({"loop": {"trigger": "book", "min_gap_ms": GAP_S * 1000, **loop}})
    return build_bot(
        config,
        data_dir=tmp_path,
        interval_s=interval_s,
        max_ticks=max_ticks,
        alert=Recorder().alert,
        env={},
        clock=clock,
        hooks=hooks,
        print_line=lambda line: None,
        make_venues=signalling_venues,
    )


def run_with_updates(
    tmp_path: Path, during: Mapping[int, Sequence[OrderBook]], ticks: int
) -> tuple[Bot, TickLog]:
    log = TickLog()
    updates = Updates(during)
    bot = book_bot(tmp_path, [updates, log], RecordingClock(), max_ticks=ticks)
    updates.listener = bot.events
    try:
        bot.loop.run()
    finally:
        bot.close()
    return bot, log


def test_updates_during_a_tick_make_one_next_tick_then_a_full_pass_at_the_interval(tmp_path: Path) -> None:
    five = [book(), book(), book("binance", "BTC/USDT"), book(), book()]
    bot, log = run_with_updates(tmp_path, {1: five}, ticks=3)
    got = [(r.started_at, r.changed_books, r.book_updates) for r in log.reports]
    # Tick 1 is a full pass; the five updates while it ran make one tick, min_gap after it, on the
    # two books they changed (one asset on two venues); with nothing more, a full pass at 1 s.
    assert got == [
        (0.0, None, 0),
        (pytest.approx(GAP_S), 2, 5),
        (pytest.approx(1.0), None, 0),
    ]
    assert bot.events.updates == bot.events.taken == 5  # none lost, none counted twice


def test_min_gap_spaces_the_ticks_of_a_market_that_never_rests(tmp_path: Path) -> None:
    _bot, log = run_with_updates(tmp_path, {t: [book("binance", "ETH/USDT")] for t in range(1, 40)}, ticks=40)
    starts = log.starts
    assert [round(b - a, 9) for a, b in pairwise(starts)] == [GAP_S] * 39
    assert [r.changed_books for r in log.reports] == [None] + [1] * 39  # 40 ticks end at 0.195 s


def test_a_full_pass_comes_every_interval_in_a_hot_market(tmp_path: Path) -> None:
    hot = {t: [book("binance", "ETH/USDT")] for t in range(1, 260)}
    _bot, log = run_with_updates(tmp_path, hot, ticks=260)  # 260 ticks 5 ms apart: 1.295 s
    full = [r.started_at for r in log.reports if r.changed_books is None]
    assert full == [0.0, pytest.approx(1.0)]


def test_a_stop_wakes_a_loop_that_waits_for_books(tmp_path: Path) -> None:
    log = TickLog()
    bot = book_bot(tmp_path, [log], SystemClock(), max_ticks=None, interval_s=600.0)
    runner = threading.Thread(target=bot.loop.run, daemon=True)
    try:
        runner.start()
        wait_until(lambda: len(log.reports) == 1, 30, "the first tick")
        bot.loop.request_stop("operator asked")
        runner.join(30)
        assert not runner.is_alive()  # not after the 600 s interval
    finally:
        bot.close()


def test_the_feed_reads_only_the_changed_books(tmp_path: Path) -> None:
    bot = book_bot(tmp_path, [], RecordingClock(), max_ticks=1)
    try:
        full = bot.feed.snapshot(None)
        assert full.changed is None and len(full.books) == 4  # BTC, ETH on two venues
        one = bot.feed.snapshot(frozenset({("upbit", "ETH/KRW"), ("nowhere", "XRP/KRW")}))
        assert one.changed == frozenset({("upbit", "ETH")}) and one.changed_assets() == {"ETH"}
        assert one.books.keys() == full.books.keys()  # the others are the last that came
        assert one.books[("binance", "BTC")] is full.books[("binance", "BTC")]
        fx = bot.feed.snapshot(frozenset({("upbit", "USDT/KRW")}))
        assert fx.changed == full.books.keys()  # a new rate moves every cross-venue spread
    finally:
        bot.close()


def test_book_events_coalesce_and_count_every_update_once() -> None:
    events = BookEvents()
    assert not events.signal.is_set() and events.take().updates == 0
    for b in (book(), book(), book("binance", "BTC/USDT")):
        events(b)
    assert events.signal.is_set() and events.pending() == 3
    got = events.take()
    assert got.keys == {("upbit", "BTC/KRW"), ("binance", "BTC/USDT")} and got.updates == 3
    assert not events.signal.is_set() and events.take().keys == frozenset()
    events(book())
    assert events.updates == 4 and events.taken + events.pending() == 4


def test_mock_updates_drive_book_triggered_ticks_without_a_socket(tmp_path: Path) -> None:
    log = TickLog()
    lines: list[str] = []
    config = mock_config({"mock": {"updates_per_s": 50.0}, "loop": {"interval_s": 30.0}})
    assert config.loop_trigger() == "book"
    bot = build_bot(
        config, data_dir=tmp_path, interval_s=30.0, max_ticks=25, alert=Recorder().alert, env={},
        clock=SystemClock(), hooks=[log], print_line=lines.append,
    )  # fmt: skip
    try:
        assert bot.venues.signals_books and not bot.venues.before_tick
        assert bot.loop.run() == 0
    finally:
        bot.close()
    # 25 ticks long before the 30 s interval: all but the first were woken by the feed's updates
    assert len(log.reports) == 25 and log.reports[0].changed_books is None
    assert all(r.book_updates > 0 for r in log.reports[1:])
    assert sum(r.book_updates for r in log.reports) == bot.events.taken
    assert bot.events.updates == bot.events.taken + bot.events.pending()
    # the feed steps the whole market: every book changed, so each tick looks at every asset
    assert {r.changed_books for r in log.reports[1:]} <= {4, None}
