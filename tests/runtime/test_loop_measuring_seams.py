"""What the loop offers a measurer (the benchmark): a StageTimer told of each named stage of a
tick, and each tick's start error against its slot on the schedule, in the tick report."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from arbitrage.runtime.loop import NO_STAGE_TIMER, TickReport
from tests.e2e.raising_engine import ENTRY as RAISING
from tests.runtime.mock_bot import RecordingClock, TickLog, mock_bot

ENGINES = ["signal", "safety", "execution", "stoploss", "position"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the halt file is looked up in the working directory


class StageLog:
    """A StageTimer and a tick hook: the stages each tick went through, as (event, stage)."""

    def __init__(self) -> None:
        self.current: list[tuple[str, str]] = []
        self.ticks: list[tuple[TickReport, list[tuple[str, str]]]] = []

    def enter(self, stage: str) -> None:
        self.current.append(("enter", stage))

    def leave(self, stage: str) -> None:
        self.current.append(("leave", stage))

    def after_tick(self, report: TickReport) -> int | None:
        self.ticks.append((report, self.current))
        self.current = []
        return None


def _stages(events: list[tuple[str, str]]) -> list[str]:
    """The stages in order, once each pair of events is checked: enter then leave, never nested."""
    assert [e for e, _ in events] == ["enter", "leave"] * (len(events) // 2), events
    entered, left = events[0::2], events[1::2]
    assert [s for _, s in entered] == [s for _, s in left], events
    return [s for _, s in entered]


def _expected(report: TickReport, engines: list[str], trading: set[str]) -> list[str]:
    stages = ["snapshot", "residuals"]
    for engine in engines:
        stages.append(engine)
        if report.traded and engine in trading:
            stages.append(f"{engine}.orders")
    if report.traded:
        stages.append("residuals")  # the unwind at the end of a tick that traded
    return [*stages, "sysmonitor", "logging"]


def test_a_stage_timer_is_told_of_every_stage_in_the_order_the_tick_runs_them(tmp_path: Path) -> None:
    log = StageLog()
    bot, _ = mock_bot(tmp_path, interval_s=0.0, max_ticks=40, hooks=[log])
    assert bot.loop.stage_timer is NO_STAGE_TIMER  # a real run measures nothing
    bot.loop.stage_timer = log
    try:
        assert bot.loop.run() == 0
    finally:
        bot.close()
    assert len(log.ticks) == 40
    traded = 0
    for report, events in log.ticks:
        stages = _stages(events)
        # Which engine's intents made the orders: execution's entries, stoploss's exits.
        orders = {s.removesuffix(".orders") for s in stages if s.endswith(".orders")}
        assert orders <= {"execution", "stoploss"}, stages
        assert bool(orders) == report.traded
        assert stages == _expected(report, ENGINES, orders), report.tick
        traded += report.traded
    assert traded > 0, "the run must trade for the orders stages to be seen"


def test_an_engine_that_raises_still_leaves_its_stage(tmp_path: Path) -> None:
    engines = ["signal", "safety", RAISING, "execution", "stoploss", "position"]
    log = StageLog()
    overrides = {"engines": engines, "plugins": {RAISING: {"raise_every": 2}}}
    bot, _ = mock_bot(tmp_path, overrides=overrides, interval_s=0.0, max_ticks=6, hooks=[log])
    bot.loop.stage_timer = log
    try:
        assert bot.loop.run() == 0
    finally:
        bot.close()
    assert len(log.ticks) == 6
    for report, events in log.ticks:
        stages = _stages(events)
        orders = {s.removesuffix(".orders") for s in stages if s.endswith(".orders")}
        assert stages == _expected(report, engines, orders), report.tick
    raised = [r.tick for r, _ in log.ticks if r.live_errors]
    assert raised == [2, 4, 6]  # the ticks the engine raised on went on to the end all the same


class Oversleeping(RecordingClock):
    """A fake clock whose waits wake late by a fixed amount, as a loaded machine's do."""

    def __init__(self, late_s: float) -> None:
        super().__init__()
        self._late_s = late_s

    def wait(self, event: threading.Event, seconds: float) -> bool:
        woke = super().wait(event, seconds)
        self.advance(self._late_s)
        return woke


def test_the_report_says_how_late_each_tick_started_against_its_slot(tmp_path: Path) -> None:
    ticks = TickLog()
    clock = Oversleeping(0.003)
    bot, _ = mock_bot(tmp_path, interval_s=1.0, max_ticks=5, hooks=[ticks], clock=clock)
    try:
        bot.loop.run()
    finally:
        bot.close()
    # The first tick starts on t0; every later one 3 ms after its slot, and the slots stay on
    # the grid (the lateness does not accumulate).
    assert [r.start_error_ms for r in ticks.reports] == pytest.approx([0.0, 3.0, 3.0, 3.0, 3.0])
    assert ticks.starts == pytest.approx([0.0, 1.003, 2.003, 3.003, 4.003])


def test_a_tick_run_outside_the_schedule_reports_no_start_error(tmp_path: Path) -> None:
    bot, _ = mock_bot(tmp_path, max_ticks=1)
    try:
        report = bot.loop.run_tick()
    finally:
        bot.close()
    assert report.start_error_ms == 0.0
