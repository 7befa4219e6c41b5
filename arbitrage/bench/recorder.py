"""What one loop run took, tick by tick: the loop's stages through its StageTimer seam, the
ledger, heartbeat and watchdog through timed methods, each tick's total through the last hook."""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psutil

from arbitrage.clock import Clock
from arbitrage.runtime.loop import TickReport

RSS_SAMPLES = 10  # RSS is read this many times over the measured ticks, to show the trend


class CallTimer:
    """Milliseconds spent in some methods of an object since the last take(); nested calls count once."""

    def __init__(self) -> None:
        self.ms = 0.0
        self._inside = False

    def take(self) -> float:
        ms, self.ms = self.ms, 0.0
        return ms

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._inside:
                return fn(*args, **kwargs)
            self._inside = True
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.ms += (time.perf_counter() - t) * 1000.0
                self._inside = False

        return timed

    def wrap_context(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @contextmanager
        def timed(*args: Any, **kwargs: Any) -> Iterator[None]:
            if self._inside:
                with fn(*args, **kwargs):
                    yield
                return
            self._inside = True
            t = time.perf_counter()
            try:
                with fn(*args, **kwargs):
                    yield
            finally:
                self.ms += (time.perf_counter() - t) * 1000.0
                self._inside = False

        return timed


def instrument(obj: Any, names: Sequence[str], timer: CallTimer) -> None:
    """Time the named methods of this one object (an instance attribute shadows the method)."""
    for name in names:
        fn = getattr(obj, name)
        setattr(obj, name, timer.wrap_context(fn) if name == "transaction" else timer.wrap(fn))


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / (1024 * 1024)


class TickRecorder:
    """The loop's StageTimer and its last tick hook: each tick's total, stage times and start
    error, in arrays sized up front so that recording allocates nothing while memory is measured."""

    def __init__(self, stages: Sequence[str], size: int, timers: dict[str, CallTimer], warmup: int) -> None:
        self.stages = list(stages)
        self.columns = {s: array("d", bytes(8 * size)) for s in self.stages}
        self.total = array("d", bytes(8 * size))
        self.loop_ms = array("d", bytes(8 * size))  # the loop's own measure of run_tick, no wait, no hooks
        self.started = array("d", bytes(8 * size))
        # From the tick's start (the loop's monotonic clock) to the end of its hooks: the tick's
        # work without the wait before it, for runs on an interval
        self.busy = array("d", bytes(8 * size))
        self.start_errors = array("d", bytes(8 * size))  # ms behind the tick's slot on the schedule
        self.traded = array("b", bytes(size))
        self.n = 0
        self.rss: list[tuple[int, float]] = []  # (ticks done, MB), from the end of the warm-up on
        step = max(1, (size - warmup) // RSS_SAMPLES)
        self._rss_at = {min(size, warmup + i * step) for i in range(RSS_SAMPLES + 1)} | {max(1, warmup)}
        self._size = size
        self._timers = timers
        self._last = time.perf_counter()
        self._entered = self._last

    def start(self) -> None:
        self._last = time.perf_counter()

    # StageTimer: the stage's time adds to this tick's cell (residuals come twice in a trading tick).

    def enter(self, stage: str) -> None:
        self._entered = time.perf_counter()

    def leave(self, stage: str) -> None:
        ms = (time.perf_counter() - self._entered) * 1000.0
        column = self.columns.get(stage)
        if column is not None and self.n < self._size:
            column[self.n] += ms

    # TickHook

    def after_tick(self, report: TickReport) -> int | None:
        now = time.perf_counter()
        i = self.n
        if i >= self._size:
            return None
        self.total[i] = (now - self._last) * 1000.0
        self.busy[i] = (time.monotonic() - report.started_at) * 1000.0
        self.loop_ms[i] = report.loop_ms
        columns = self.columns
        for name, timer in self._timers.items():
            columns[name][i] = timer.take()
        if "heartbeat" in columns:
            # The Supervisor's watchdog stage includes the heartbeat; keep the stages disjoint.
            columns["watchdog"][i] -= columns["heartbeat"][i]
        self.traded[i] = report.traded
        self.started[i] = report.started_at
        self.start_errors[i] = report.start_error_ms
        self.n = i + 1
        if self.n in self._rss_at:
            self.rss.append((self.n, rss_mb()))
        self._last = time.perf_counter()  # the recorder's own work is no part of the next tick
        return None


class LateTick:
    """A hook that makes one tick late by sleeping once, to show the schedule skips rather than bursts."""

    def __init__(self, tick: int, seconds: float, clock: Clock) -> None:
        self._tick, self._seconds, self._clock = tick, seconds, clock

    def after_tick(self, report: TickReport) -> int | None:
        if report.tick == self._tick:
            self._clock.sleep(self._seconds)
        return None


@dataclass
class LoopRun:
    synchronous: str
    recorder: TickRecorder
    warmup: int
    wall_s: float
    exit_code: int
    stop_reason: str
    heartbeat: bool
    groups: int  # entries and exits carried out
    recorded: tuple[int, int, int] | None = None  # with record: books written, dropped, bytes on disk
