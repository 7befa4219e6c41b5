"""The benchmark's figures: percentiles of what the recorder kept, and the lines the benchmark
prints, each target checked against the figure that measures it."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from arbitrage.bench.recorder import LoopRun

TARGET_P99_QUIET_MS = 1.0
TARGET_P99_TRADING_MS = 5.0
TARGET_RATIO = 10.0
TARGET_RSS_GROWTH_MB = 5.0
TARGET_COLD_S = 1.0
TARGET_SCHEDULE_MEAN_MS = 1.0

if TYPE_CHECKING:  # the recording block's figures are built by recording_cost, which uses Stats
    from arbitrage.bench.recording_cost import RecordingFigures


@dataclass(frozen=True)
class Stats:
    n: int
    p50: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        ordered = sorted(values)
        n = len(ordered)

        def rank(q: float) -> float:  # nearest rank: always a value that was measured
            return ordered[max(0, math.ceil(q * n) - 1)]

        return cls(n, rank(0.5), rank(0.99), ordered[-1], statistics.fmean(ordered))


@dataclass
class LoopFigures:
    run: LoopRun
    ticks_per_s: float
    overall: Stats
    non_trading: Stats
    trading: Stats
    non_trading_without_market: Stats  # tick minus the snapshot stage (the simulated market)
    stages: dict[str, tuple[Stats, Stats]]  # stage -> (non-trading, trading)
    beats: Stats | None = None  # time per heartbeat, None when Redis is off

    @property
    def rss_growth_mb(self) -> float:
        rss = self.run.recorder.rss
        return rss[-1][1] - rss[0][1] if rss else math.nan


def loop_figures(run: LoopRun) -> LoopFigures:
    rec = run.recorder
    keep = range(run.warmup, rec.n)
    total = [rec.total[i] for i in keep]
    trading = [i for i in keep if rec.traded[i]]
    quiet = [i for i in keep if not rec.traded[i]]
    disjoint = [s for s in rec.stages if s != "ledger"]  # ledger time lies within *.orders and residuals
    columns: dict[str, Sequence[float]] = dict(rec.columns)
    columns["other"] = other = [0.0] * rec.n
    for i in keep:
        other[i] = rec.total[i] - sum(rec.columns[s][i] for s in disjoint)
    stages = {
        name: (Stats.of([col[i] for i in quiet]), Stats.of([col[i] for i in trading]))
        for name, col in columns.items()
    }
    beats = None
    if run.heartbeat:
        beats = Stats.of([v for v in (rec.columns["heartbeat"][i] for i in keep) if v > 0])
    spent_s = sum(total) / 1000.0
    snapshot = rec.columns["snapshot"]
    return LoopFigures(
        run=run,
        ticks_per_s=len(total) / spent_s if spent_s else math.nan,
        overall=Stats.of(total),
        non_trading=Stats.of([rec.total[i] for i in quiet]),
        trading=Stats.of([rec.total[i] for i in trading]),
        non_trading_without_market=Stats.of([rec.total[i] - snapshot[i] for i in quiet]),
        stages=stages,
        beats=beats,
    )


@dataclass
class ScheduleFigures:
    interval_s: float
    ticks: int
    late_tick: int  # 0: no tick was made late
    late_by_s: float
    errors: Stats  # |actual - ideal| start, ms
    smallest_gap_after_late_ms: float
    burst: bool


def schedule_figures(run: LoopRun, interval_s: float, late_tick: int, late_by_s: float) -> ScheduleFigures:
    starts = run.recorder.started[: run.recorder.n]
    first = max(late_tick, 1)
    gaps = [(b - a) * 1000.0 for a, b in zip(starts[first - 1 :], starts[first:], strict=False)]
    smallest = min(gaps, default=math.nan)
    burst = bool(gaps) and smallest < 0.5 * interval_s * 1000.0
    errors = Stats.of([abs(e) for e in run.recorder.start_errors[: run.recorder.n]])
    return ScheduleFigures(interval_s, run.recorder.n, late_tick, late_by_s, errors, smallest, burst)


@dataclass
class BenchResult:
    symbols: int
    venues: int
    loops: list[LoopFigures] = field(default_factory=list)
    baseline: Stats | None = None
    schedule: ScheduleFigures | None = None
    cold_s: list[float] = field(default_factory=list)
    noise: Stats | None = None
    recording: RecordingFigures | None = None


# Printing --------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "     -" if math.isnan(value) else f"{value:6.3f}"


def _row(label: str, s: Stats) -> str:
    return f"  {label:<22} {s.n:>7} {_ms(s.p50)} {_ms(s.p99)} {_ms(s.max)} {_ms(s.mean)}"


def _loop_lines(f: LoopFigures) -> list[str]:
    run = f.run
    stop = f" ({run.stop_reason})" if run.stop_reason else ""
    trading_ticks = sum(run.recorder.traded[: run.recorder.n])
    groups = run.groups / trading_ticks if trading_ticks else 0.0
    lines = [
        f"== loop, ledger synchronous={run.synchronous}: {f.overall.n} ticks after {run.warmup} warm-up, "
        f"{f.trading.n} trading ({groups:.1f} entries+exits each), wall {run.wall_s:.1f} s, "
        f"exit {run.exit_code}{stop}",
        f"  ticks per second: {f.ticks_per_s:.0f}",
        f"  {'tick time (ms)':<22} {'n':>7} {'p50':>6} {'p99':>6} {'max':>6} {'mean':>6}",
        _row("all ticks", f.overall),
        _row("non-trading ticks", f.non_trading),
        _row("trading ticks", f.trading),
        _row("non-trading - snapshot", f.non_trading_without_market),
        f"  {'stage (ms)':<22} {'non-trading p50 p99 max':>20}   {'trading p50 p99 max':>20}",
    ]
    for name, (quiet, trading) in f.stages.items():
        label = "ledger (in *.orders)" if name == "ledger" else name
        lines.append(
            f"  {label:<22} {_ms(quiet.p50)} {_ms(quiet.p99)} {_ms(quiet.max)}   "
            f"{_ms(trading.p50)} {_ms(trading.p99)} {_ms(trading.max)}"
        )
    if f.beats is None:
        lines.append(f"  {'heartbeat':<22} off (pass --redis to beat the real Redis)")
    else:
        b = f.beats
        lines.append(f"  {'heartbeat, per beat':<22} {b.n} beats: p50 {_ms(b.p50)} p99 {_ms(b.p99)} "
                     f"max {_ms(b.max)}")  # fmt: skip
    rss = run.recorder.rss
    trend = " ".join(f"{mb:.1f}@{n}" for n, mb in rss)
    lines.append(f"  RSS MB at tick: {trend}")
    lines.append(f"  RSS growth: {f.rss_growth_mb:+.1f} MB from tick {rss[0][0]} to tick {rss[-1][0]}")
    return lines


def _over(a: float, b: float) -> float:
    return a / b if b else math.nan


def _ratio(f: LoopFigures, base: Stats) -> float:
    return _over(f.non_trading.p50, base.p50)


def _baseline_lines(base: Stats, loops: Sequence[LoopFigures]) -> list[str]:
    lines = [
        "== bare baseline: the best top-of-book net spread, fees and FX, over the same snapshots",
        f"  {'(ms)':<22} {'n':>7} {'p50':>6} {'p99':>6} {'max':>6} {'mean':>6}",
        _row("bare loop", base),
    ]
    for f in loops:
        lines.append(
            f"  bot/bare, non-trading p50 ({f.run.synchronous}): {_ratio(f, base):.1f}x whole tick, "
            f"{_over(f.non_trading_without_market.p50, base.p50):.1f}x without the snapshot stage"
        )
    return lines


def _schedule_lines(s: ScheduleFigures) -> list[str]:
    late = f", tick {s.late_tick} late by {s.late_by_s} s" if s.late_tick else ""
    return [
        f"== schedule at interval {s.interval_s} s over {s.ticks} ticks{late}",
        f"  start error vs the ideal schedule: mean {s.errors.mean:.3f} ms, worst {s.errors.max:.3f} ms",
        f"  burst after the late tick: {'YES' if s.burst else 'no'} (smallest gap between starts from "
        f"then on {s.smallest_gap_after_late_ms:.1f} ms = "
        f"{_over(s.smallest_gap_after_late_ms, s.interval_s * 1000):.2f} interval)",
    ]


def _target_lines(result: BenchResult) -> list[str]:
    def check(label: str, value: float, limit: float, unit: str) -> str:
        verdict = "n/a" if math.isnan(value) else ("met" if value <= limit else "MISSED")
        return f"  {label:<44} {value:9.3f} {unit:<3} (target <= {limit:g}) {verdict}"

    lines = [f"== targets ({result.symbols} symbols x {result.venues} venues)"]
    for f in result.loops:
        s = f.run.synchronous
        lines.append(check(f"p99 non-trading tick, {s}", f.non_trading.p99, TARGET_P99_QUIET_MS, "ms"))
        lines.append(check(f"p99 trading tick, {s}", f.trading.p99, TARGET_P99_TRADING_MS, "ms"))
        if result.baseline is not None:
            lines.append(check(f"bot/bare p50 non-trading, {s}", _ratio(f, result.baseline),
                               TARGET_RATIO, "x"))  # fmt: skip
        lines.append(check(f"RSS growth over {f.overall.n} ticks, {s}", f.rss_growth_mb,
                           TARGET_RSS_GROWTH_MB, "MB"))  # fmt: skip
    if result.cold_s:
        lines.append(check("cold start, median", statistics.median(result.cold_s), TARGET_COLD_S, "s"))
    if result.schedule is not None:
        sch = result.schedule
        lines.append(check("mean schedule error", sch.errors.mean, TARGET_SCHEDULE_MEAN_MS, "ms"))
        lines.append(f"  {'no burst after a late tick':<44} {'met' if not sch.burst else 'MISSED'}")
    return lines


def report_lines(result: BenchResult, block: str) -> list[str]:
    """The printed lines of one block: noise, loop (the latest run), baseline, schedule, cold, targets."""
    if block == "noise" and result.noise is not None:
        n = result.noise
        return [f"== machine noise: a fixed pure-Python workload timed like a tick: p50 {n.p50:.3f} "
                f"p99 {n.p99:.3f} max {n.max:.3f} ms (p99/p50 {_over(n.p99, n.p50):.2f})"]  # fmt: skip
    if block == "loop" and result.loops:
        return _loop_lines(result.loops[-1])
    if block == "baseline" and result.baseline is not None:
        return _baseline_lines(result.baseline, result.loops)
    if block == "schedule" and result.schedule is not None:
        return _schedule_lines(result.schedule)
    if block == "cold" and result.cold_s:
        runs = " ".join(f"{s:.2f}" for s in result.cold_s)
        return [f"== cold start: scripts/run_live.py --mode mock --once, {len(result.cold_s)} runs: "
                f"median {statistics.median(result.cold_s):.2f} s ({runs})"]  # fmt: skip
    if block == "recording" and result.recording is not None:
        return result.recording.lines()
    if block == "targets":
        return _target_lines(result)
    return []
