#!/usr/bin/env python3
"""Replay's benchmark: `python scripts/bench_replay.py` makes a recorded day of the mock market
(--symbols assets x 2 venues plus the FX market, one update a second per book; cached under
--cache), replays it --runs times with the bot's whole run, and prints the median wall time
(loading the recording included), ticks per second, the replay process's CPU time (less moved by
a loaded machine than the wall time) and the peak RSS."""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

# Runnable from a checkout without installing: the package sits beside this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_recording import make_recording

from arbitrage.bench.options import BenchOptions, bench_config
from arbitrage.clock import FakeClock
from arbitrage.config import AppConfig
from arbitrage.recording.tape import load_tape
from arbitrage.runtime.replay import ReplayOptions, replay
from arbitrage.venues.replay_market import ReplayMarket

DAY_START = 1_767_571_200.0  # 2026-01-05 00:00:00 UTC


def fixed_workload_s() -> float:
    """A fixed pure-Python workload (5M additions), to read the figures by: how loaded the machine
    is (about 0.2-0.3 s on an idle core of a current x86 machine)."""
    began = time.perf_counter()
    total = 0
    for i in range(5_000_000):
        total += i
    return time.perf_counter() - began


def children_cpu_s() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def market_alone(recording: Path, config: AppConfig) -> tuple[float, float, int]:
    """The replay's own share, without the bot: reading the recording, then per tick stepping the
    market to the clock and reading every book's top as the snapshot does. (read s, ticks s, ticks)"""
    began = time.perf_counter()
    tape = load_tape(recording)
    read_s = time.perf_counter() - began
    clock = FakeClock(start=tape.ready_at())
    market = ReplayMarket(tape, clock, config.loop.book_depth)
    books = [(m.venue, m.symbol) for m in tape.markets]
    ticks = int(tape.end - tape.ready_at()) + 1
    began = time.perf_counter()
    for _ in range(ticks):
        market.step()
        for venue, symbol in books:
            market.book(venue, symbol, config.loop.book_depth).best_bid  # noqa: B018
        clock.advance(1.0)
    return read_s, time.perf_counter() - began, ticks


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--symbols", type=int, default=20, help="synthetic assets on each of 2 venues")
    p.add_argument("--seconds", type=int, default=86_400, help="recorded seconds (a day)")
    p.add_argument("--runs", type=int, default=3, help="replays timed; the median is reported")
    p.add_argument("--latency-ms", type=float, default=50.0, help="replay.fill_latency_ms")
    p.add_argument("--cache", type=Path, default=Path("/tmp/arb-replay-bench"), help="recording cache")
    p.add_argument("--market-only", action="store_true", help="time the replay market alone, no bot")
    args = p.parse_args(argv)
    base = args.cache / f"{args.symbols}x2-{args.seconds}s"
    base.mkdir(parents=True, exist_ok=True)
    config = bench_config(BenchOptions(workdir=base, symbols=args.symbols), "FULL", interval_s=1.0)
    config_path = base / "config.yml"
    document = config.model_dump(mode="json", exclude={"storage"})
    document["replay"]["fill_latency_ms"] = args.latency_ms
    config_path.write_text(yaml.safe_dump(document), encoding="utf-8")
    recording = base / "recording"
    if not recording.is_dir():
        began = time.perf_counter()
        books = make_recording(config, recording, args.seconds, 1.0, DAY_START)
        print(f"recorded {books:,} books in {time.perf_counter() - began:.0f} s -> {recording}")
    size_mb = sum(f.stat().st_size for f in recording.rglob("*.parquet")) / 1e6
    print(f"recording: {recording} ({size_mb:,.0f} MB), {args.symbols} symbols x 2 venues + FX, "
          "1 update/s/book")  # fmt: skip
    print(f"fixed workload: {fixed_workload_s():.2f} s; load average {os.getloadavg()[0]:.1f}")
    if args.market_only:
        read_s, ticks_s, n = market_alone(recording, config)
        print(f"replay market alone: reading {read_s:.1f} s, {n:,} ticks stepped and read in {ticks_s:.1f} s "
              f"({ticks_s / n * 1e6:.0f} us a tick)")  # fmt: skip
        return 0
    walls, cpus, ticks = [], [], 0
    for run in range(args.runs):
        out = base / "runs" / f"{time.strftime('%Y%m%dT%H%M%S')}-{run}"
        # Each replay in a process of its own, as `arb replay` runs: its peak RSS is its own.
        cpu_before = children_cpu_s()
        with ProcessPoolExecutor(max_workers=1, max_tasks_per_child=1) as pool:
            result = pool.submit(replay, ReplayOptions(recording, str(config_path), out=out), {}).result()
        cpus.append(children_cpu_s() - cpu_before)  # the pool's process has exited and been reaped
        walls.append(result.wall_s)
        ticks = result.ticks
        print(f"run {run + 1}: {result.wall_s:.1f} s ({result.load_s:.1f} s reading the recording), "
              f"CPU {cpus[-1]:.1f} s, "
              f"{result.ticks / result.wall_s:,.0f} ticks/s, "
              f"trades {result.figures.trades}, orders {result.figures.orders}, PnL {result.figures.pnl}, "
              f"exit {result.exit_code}")  # fmt: skip
    if not walls:
        return 0
    median = statistics.median(walls)
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest replay
    print(f"replay of {ticks:,} ticks: median {median:.1f} s of {args.runs} runs "
          f"({ticks / median:,.0f} ticks/s), median CPU {statistics.median(cpus):.1f} s; "
          f"peak RSS {rss_mb:,.0f} MB")  # fmt: skip
    print(f"fixed workload after: {fixed_workload_s():.2f} s; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
