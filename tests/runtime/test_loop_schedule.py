"""The live loop's schedule on a fake clock: a fixed grid, no catch-up bursts, stops and counts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from arbitrage.clock import FakeClock, SystemClock
from arbitrage.runtime.loop import LiveLoop, TickReport
from tests.runtime.mock_bot import RecordingClock, TickLog, mock_bot
from tests.waiting import wait_until


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the halt file is looked up in the working directory


class LateTick:
    """A tick hook that makes chosen ticks run late by advancing the fake clock."""

    def __init__(self, clock: FakeClock, late: dict[int, float]) -> None:
        self._clock = clock
        self._late = late

    def after_tick(self, report: TickReport) -> int | None:
        self._clock.advance(self._late.get(report.tick, 0.0))
        return None


class StopAt:
    def __init__(self, tick: int) -> None:
        self.tick = tick
        self.loop: LiveLoop | None = None

    def after_tick(self, report: TickReport) -> int | None:
        if report.tick == self.tick and self.loop is not None:
            self.loop.request_stop("operator asked", 0)
        return None


def test_tick_k_starts_at_t0_plus_k_intervals(tmp_path: Path) -> None:
    clock = RecordingClock()
    ticks = TickLog()
    bot, rec = mock_bot(tmp_path, interval_s=1.0, max_ticks=6, hooks=[ticks], clock=clock)
    try:
        assert bot.loop.run() == 0
    finally:
        bot.close()
    assert ticks.starts == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert [r.start_error_ms for r in ticks.reports] == [0.0] * 6
    assert clock.waits == [1.0] * 5  # no wait after the last tick
    assert len(rec.lines) == 6


def test_fractional_interval_stays_on_the_grid(tmp_path: Path) -> None:
    clock = RecordingClock()
    ticks = TickLog()
    bot, _ = mock_bot(tmp_path, interval_s=0.1, max_ticks=30, hooks=[ticks], clock=clock)
    try:
        bot.loop.run()
    finally:
        bot.close()
    # No drift: the start times do not accumulate the error of 30 waits.
    assert ticks.starts == pytest.approx([k * 0.1 for k in range(30)], abs=1e-9)
    assert all(abs(r.start_error_ms) < 1e-6 for r in ticks.reports)


def test_a_late_tick_skips_the_missed_slots_without_a_burst(tmp_path: Path) -> None:
    clock = RecordingClock()
    ticks = TickLog()
    late = LateTick(clock, {3: 2.5})  # tick 3 starts at 2.0 and ends at 4.5
    bot, _ = mock_bot(tmp_path, interval_s=1.0, max_ticks=6, hooks=[late, ticks], clock=clock)
    try:
        bot.loop.run()
    finally:
        bot.close()
    # Slots 3.0 and 4.0 are gone; the next tick is the next slot on the grid, 5.0.
    assert ticks.starts == [0.0, 1.0, 2.0, 5.0, 6.0, 7.0]
    assert clock.waits[2] == pytest.approx(0.5)
    # Each tick started on its own slot: nothing ran late because of the skipped ones.
    assert [r.start_error_ms for r in ticks.reports] == [0.0] * 6


def test_a_tick_ending_exactly_on_a_slot_starts_the_next_at_once(tmp_path: Path) -> None:
    clock = RecordingClock()
    ticks = TickLog()
    late = LateTick(clock, {2: 2.0})  # tick 2 starts at 1.0 and ends at 3.0, on a slot
    bot, _ = mock_bot(tmp_path, interval_s=1.0, max_ticks=4, hooks=[late, ticks], clock=clock)
    try:
        bot.loop.run()
    finally:
        bot.close()
    assert ticks.starts == [0.0, 1.0, 3.0, 4.0]


def test_interval_zero_runs_back_to_back(tmp_path: Path) -> None:
    clock = RecordingClock()
    ticks = TickLog()
    busy = LateTick(clock, {k: 0.25 for k in range(1, 11)})  # each tick takes a quarter second
    bot, rec = mock_bot(tmp_path, interval_s=0.0, max_ticks=10, hooks=[busy, ticks], clock=clock)
    try:
        bot.loop.run()
    finally:
        bot.close()
    assert clock.waits == []  # never waits
    assert ticks.starts == pytest.approx([k * 0.25 for k in range(10)])
    assert len(rec.lines) == 10


@pytest.mark.parametrize("loops", [1, 7])
def test_loops_count_is_respected(tmp_path: Path, loops: int) -> None:
    ticks = TickLog()
    bot, rec = mock_bot(tmp_path, interval_s=0.5, max_ticks=loops, hooks=[ticks])
    try:
        assert bot.loop.run() == 0
    finally:
        bot.close()
    assert len(ticks.reports) == loops
    assert bot.state.counters.ticks == loops
    assert len(rec.lines) == loops
    assert [r.tick for r in ticks.reports] == list(range(1, loops + 1))


def test_request_stop_ends_an_unlimited_loop(tmp_path: Path) -> None:
    ticks = TickLog()
    stop = StopAt(4)
    bot, _ = mock_bot(tmp_path, interval_s=1.0, max_ticks=None, hooks=[ticks, stop])
    stop.loop = bot.loop
    try:
        code = bot.loop.run()
    finally:
        bot.close()
    assert code == 0
    assert len(ticks.reports) == 4
    assert bot.loop.stop_reason == "operator asked"
    assert bot.loop.stopping


def test_a_stop_requested_before_the_run_runs_nothing(tmp_path: Path) -> None:
    ticks = TickLog()
    bot, rec = mock_bot(tmp_path, max_ticks=None, hooks=[ticks])
    bot.loop.request_stop("signal SIGTERM", 0)
    bot.loop.request_stop("a second request does not replace the first", 9)
    try:
        assert bot.loop.run() == 0
    finally:
        bot.close()
    assert ticks.reports == [] and rec.lines == []
    assert bot.loop.stop_reason == "signal SIGTERM"


class ExitWith:
    def __init__(self, tick: int, code: int) -> None:
        self.tick, self.code = tick, code

    def after_tick(self, report: TickReport) -> int | None:
        return self.code if report.tick == self.tick else None


def test_a_hook_exit_code_stops_the_loop_with_that_code(tmp_path: Path) -> None:
    ticks = TickLog()
    bot, _ = mock_bot(tmp_path, max_ticks=None, hooks=[ExitWith(3, 3), ticks])
    try:
        assert bot.loop.run() == 3
    finally:
        bot.close()
    assert len(ticks.reports) == 3  # the other hooks still saw the tick
    assert bot.loop.stop_reason == "ExitWith requested exit 3"


def test_a_stop_from_another_thread_wakes_a_long_wait(tmp_path: Path) -> None:
    """With the real clock: a one-minute interval does not delay a SIGTERM-style stop."""
    ticks = TickLog()
    bot, _ = mock_bot(tmp_path, interval_s=60.0, max_ticks=None, hooks=[ticks], clock=SystemClock())
    done = threading.Event()
    result: list[int] = []

    def run() -> None:
        result.append(bot.loop.run())
        done.set()

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    wait_until(lambda: ticks.reports, 30, "the first tick", every_s=0.01)
    bot.loop.request_stop("signal SIGINT", 0)
    try:
        assert done.wait(30), "the loop did not wake up from its wait"
    finally:
        bot.close()
    assert result == [0]
    assert len(ticks.reports) == 1
