"""The benchmark's driver: every measurement in turn, each block printed as soon as it is done.

A loop run is the real loop (runtime.assembly, as `arb run` builds it: file logging, no console)
in mock mode on the synthetic market of options.bench_config, with a TickRecorder plugged into
the loop's StageTimer seam and its hooks; figures turns what it recorded into the printed lines.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from arbitrage.bench.baseline import run_baseline
from arbitrage.bench.figures import BenchResult, Stats, loop_figures, report_lines, schedule_figures
from arbitrage.bench.machine import cold_starts, noise_floor
from arbitrage.bench.options import REDIS_URL, BenchOptions, bench_config
from arbitrage.bench.recorder import CallTimer, LateTick, LoopRun, TickRecorder, instrument, rss_mb
from arbitrage.bench.recording_cost import RecordingFigures, RecordingSwitch, recording_figures
from arbitrage.clock import SystemClock
from arbitrage.config import AppConfig
from arbitrage.ops.logs import reset_logging
from arbitrage.runtime.assembly import Run, RunSettings, assemble
from arbitrage.runtime.loop import TickHook

LEDGER_WRITES = ("transaction", "next_sequence", "record_opportunity", "insert_orders", "update_order",
                 "record_fill", "save_position", "record_hedge_event", "add_daily_pnl")  # fmt: skip


def run_loop(options: BenchOptions, synchronous: str, ticks: int, workdir: Path, *, warmup: int = 0,
             interval_s: float = 0.0, extra_hooks: Sequence[TickHook] = (),
             record: bool = False, config: AppConfig | None = None,
             attach: Callable[[Run], None] | None = None) -> LoopRun:  # fmt: skip
    """Build the bot as a real run does, tick it `warmup + ticks` times and record every tick;
    with `record`, the market recording on (in workdir/recordings); `config` (a fleet worker's)
    instead of the options' own; `attach` is shown the run before its first tick."""
    redis_prefix = f"bench-{os.getpid()}" if options.redis else None
    record_dir = workdir / "recordings" if record else None
    if config is None:
        config = bench_config(
            options, synchronous, redis_prefix=redis_prefix, interval_s=interval_s, record_dir=record_dir
        )
    settings = RunSettings(workdir / "data", workdir / "logs", interval_s, warmup + ticks)
    run = assemble(config, settings, {}, SystemClock())
    bot, redis, supervisor = run.bot, run.redis, run.supervisor
    try:
        if attach is not None:
            attach(run)
        # What lies outside the loop's own stages is timed by wrapping the objects' methods.
        timers = {"ledger": CallTimer(), "watchdog": CallTimer(), "console": CallTimer()}
        instrument(bot.ledger, LEDGER_WRITES, timers["ledger"])
        instrument(supervisor, ("after_tick",), timers["watchdog"])
        instrument(run.console, ("after_tick",), timers["console"])  # the operator's console state
        if redis is not None:
            timers["heartbeat"] = CallTimer()
            instrument(redis, ("heartbeat", "heartbeat_age_ms"), timers["heartbeat"])
        engines = list(config.engines)
        stages = ["snapshot", "residuals", *engines, *(f"{e}.orders" for e in engines),
                  "logging", "sysmonitor", "watchdog", *timers]  # fmt: skip
        recorder = TickRecorder(list(dict.fromkeys(stages)), warmup + ticks, timers, warmup)
        bot.loop.stage_timer = recorder
        bot.loop.hooks.extend([*extra_hooks, recorder])  # after the Recovery and Supervisor hooks
        started = time.perf_counter()
        recorder.start()
        code = bot.loop.run()
        wall = time.perf_counter() - started
        if recorder.rss[-1][0] != recorder.n:  # stopped early: the memory trend ends where the run did
            recorder.rss.append((recorder.n, rss_mb()))
        counters = bot.state.counters
        result = LoopRun(synchronous, recorder, warmup, wall, code, bot.loop.stop_reason, redis is not None,
                         counters.entries + counters.exits)  # fmt: skip
    finally:
        run.close()
        if redis is not None:
            _drop_redis_keys(redis)
        reset_logging()
    if run.recorder is not None and record_dir is not None:  # closed: every queued book is on disk
        size = sum(f.stat().st_size for f in record_dir.rglob("*.parquet"))
        result.recorded = (run.recorder.written, run.recorder.dropped, size)
    return result


def _drop_redis_keys(redis: Any) -> None:
    import redis as redis_py  # only with --redis: the keys this run wrote under its own prefix

    client = redis_py.Redis.from_url(REDIS_URL)
    try:
        client.delete(redis.heartbeat_key, redis.state_key, redis.events_key, redis.console_key)
    finally:
        client.close()


def recording_cost(options: BenchOptions) -> RecordingFigures:
    """The loop with the market recording on, its books told to the recorder in every other stretch
    of ticks (recording_cost.RecordingSwitch), on the last ledger setting."""
    runs: list[tuple[LoopRun, RecordingSwitch]] = []
    sync = options.synchronous[-1]
    for _round in range(options.record_rounds):
        switch = RecordingSwitch()
        with tempfile.TemporaryDirectory(dir=options.workdir, prefix="record-") as tmp:
            run = run_loop(options, sync, options.record_ticks, Path(tmp), warmup=options.warmup,
                           interval_s=options.record_interval_s, record=True, extra_hooks=[switch],
                           attach=switch.attach)  # fmt: skip
        runs.append((run, switch))
    return recording_figures(runs, sync, options.record_interval_s)


# The whole benchmark ---------------------------------------------------------------------------


def run_bench(options: BenchOptions, out: Callable[[str], None] = print) -> BenchResult:
    """Every measurement in turn, printing each block as soon as it is done."""
    result = BenchResult(options.symbols, options.venues)
    quotes = ", ".join("KRW" if v % 2 == 0 else "USDT" for v in range(options.venues))
    out(f"arbitrage benchmark: {options.symbols} symbols x {options.venues} venues ({quotes}), "
        f"fx {options.fx_source}, seed {options.seed}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    if options.noise_samples > 0:
        result.noise = Stats.of(noise_floor(options.noise_samples))
        out(report_lines(result, "noise")[0])
    for sync in options.synchronous:
        with tempfile.TemporaryDirectory(dir=options.workdir, prefix=f"loop-{sync}-") as tmp:
            run = run_loop(options, sync, options.ticks, Path(tmp), warmup=options.warmup)
        result.loops.append(loop_figures(run))
        for line in report_lines(result, "loop"):
            out(line)
    if options.baseline_ticks > 0:
        result.baseline = Stats.of(run_baseline(options, options.baseline_ticks))
        for line in report_lines(result, "baseline"):
            out(line)
    if options.schedule_ticks > 0:
        late = options.late_tick if 0 < options.late_tick < options.schedule_ticks else 0
        hooks = [LateTick(late, options.late_by_s, SystemClock())] if late else []
        with tempfile.TemporaryDirectory(dir=options.workdir, prefix="schedule-") as tmp:
            run = run_loop(options, options.synchronous[0], options.schedule_ticks, Path(tmp),
                           interval_s=options.schedule_interval_s, extra_hooks=hooks)  # fmt: skip
        result.schedule = schedule_figures(run, options.schedule_interval_s, late, options.late_by_s)
        for line in report_lines(result, "schedule"):
            out(line)
    if options.record_ticks > 0:
        result.recording = recording_cost(options)
        for line in report_lines(result, "recording"):
            out(line)
    if options.cold_runs > 0:
        with tempfile.TemporaryDirectory(dir=options.workdir, prefix="cold-") as tmp:
            result.cold_s = cold_starts(options.cold_runs, Path(tmp))
        for line in report_lines(result, "cold"):
            out(line)
    for line in report_lines(result, "targets"):
        out(line)
    return result
