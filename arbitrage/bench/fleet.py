"""The fleet's benchmark: the shared risk budget's round trip on loopback Redis, and the loop's tick
times of N workers (each M synthetic assets, one Redis budget) next to one worker alone."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from arbitrage.bench.driver import run_loop
from arbitrage.bench.figures import TARGET_P99_QUIET_MS, TARGET_P99_TRADING_MS, Stats, loop_figures
from arbitrage.bench.options import REDIS_URL, BenchOptions, bench_config
from arbitrage.clock import SystemClock
from arbitrage.config import AppConfig, FleetConfig, RedisConfig
from arbitrage.store.redis_client import reply_parser
from arbitrage.store.risk_budget import BalanceWant, EntryAsk, Limits, RiskBudget

# Limits no benchmark reaches: every reservation runs the whole script, none stops early.
OPEN_LIMITS = Limits(
    max_exposure=1e15, max_open_positions=10**6, daily_loss_limit=1e15, max_orders_per_minute=10**9
)


@dataclass(frozen=True)
class RoundTrips:
    admit: Stats  # a tick's admission: the worker's keep list and one entry, reserved
    release: Stats  # the round trip after the tick: the keep list, the entry released
    floor: Stats  # one GET on the same connection: what loopback and the client cost alone


def reservation_round_trips(n: int, held_per_worker: int = 5, workers: int = 3) -> RoundTrips:
    """Time `n` admissions as a worker's tick makes them (its own open positions in the keep list,
    one entry reserved) and the releases after them, against a fleet whose other workers each hold
    `held_per_worker` positions, as a trading fleet's would."""
    prefix = f"bench-fleet-{os.getpid()}"
    clock = SystemClock()
    budgets = [RiskBudget(REDIS_URL, prefix, f"w{i}", 60.0, OPEN_LIMITS, clock) for i in range(workers)]
    me = budgets[0]
    wants = [BalanceWant("upbit", "KRW", 1e6, 1e12), BalanceWant("binance", "BTC", 0.01, 1e6)]
    day = "2026-01-01"
    try:
        for budget in budgets:
            budget.rebuild({f"{budget.instance}-{k}": 1e6 for k in range(held_per_worker)})
        # As a worker sends its keep list: its open positions, their exposures unchanged since told.
        own: dict[str, float | None] = {f"{me.instance}-{k}": None for k in range(held_per_worker)}
        admit, release, floor = [], [], []
        for i in range(n):
            entry = EntryAsk(f"p{i}", 1e6, wants, ("upbit", "binance"))
            t0 = time.perf_counter()
            refused = me.sync_and_reserve(own, (), [entry], day)[0]
            t1 = time.perf_counter()
            me.sync(own)
            t2 = time.perf_counter()
            me.fleet_realized(day)
            t3 = time.perf_counter()
            if refused is not None:
                raise RuntimeError(f"benchmark reservation refused: {refused}")
            admit.append((t1 - t0) * 1000.0)
            release.append((t2 - t1) * 1000.0)
            floor.append((t3 - t2) * 1000.0)
        return RoundTrips(Stats.of(admit), Stats.of(release), Stats.of(floor))
    finally:
        me.forget_fleet()  # the keys this benchmark wrote under its own prefix
        for budget in budgets:
            budget.close()


@dataclass(frozen=True)
class WorkerTicks:
    instance: str
    ticks: int
    non_trading: Stats
    trading: Stats


def worker_config(
    options: BenchOptions, instance: str, prefix: str, interval_s: float, fleet: bool
) -> AppConfig:
    """The benchmark's bot as a worker: Redis on (heartbeat, events) either way, so that the
    comparison with and without the fleet's budget measures the budget alone."""
    config = bench_config(options, "NORMAL", interval_s=interval_s)
    return config.model_copy(
        update={
            "instance": instance,
            "redis": RedisConfig(enabled=True, url=REDIS_URL, key_prefix=prefix),
            "fleet": FleetConfig(enabled=fleet, key_prefix=prefix),
        }
    )


def _worker(args: tuple[BenchOptions, str, str, float, int, bool]) -> WorkerTicks:
    options, instance, prefix, interval_s, ticks, fleet = args
    config = worker_config(options, instance, prefix, interval_s, fleet)
    with tempfile.TemporaryDirectory(dir=options.workdir, prefix=f"{instance}-") as tmp:
        run = run_loop(options, "NORMAL", ticks, Path(tmp), warmup=options.warmup, interval_s=interval_s,
                       config=config)  # fmt: skip
    if interval_s <= 0:
        figures = loop_figures(run)  # back to back: each tick's time is the time between ticks
        return WorkerTicks(instance, ticks, figures.non_trading, figures.trading)
    rec = run.recorder  # on an interval: the tick's own time, without the wait before it
    kept = range(run.warmup, rec.n)
    trading = Stats.of([rec.busy[i] for i in kept if rec.traded[i]])
    return WorkerTicks(instance, ticks, Stats.of([rec.busy[i] for i in kept if not rec.traded[i]]), trading)


def fleet_ticks(
    options: BenchOptions, workers: int, ticks: int, interval_s: float, fleet: bool
) -> list[WorkerTicks]:
    """`workers` loops in processes of their own at once (one Redis budget when `fleet`)."""
    prefix = f"bench-fleet-{os.getpid()}-{workers}-{int(fleet)}"
    jobs = [(options, f"w{i + 1}", prefix, interval_s, ticks, fleet) for i in range(workers)]
    ctx = multiprocessing.get_context("spawn")
    try:
        with ctx.Pool(workers) as pool:
            return pool.map(_worker, jobs)
    finally:
        # The workers' heartbeats and events share the budget's prefix here: one sweep takes all.
        sweeper = RiskBudget(REDIS_URL, prefix, "bench", 1.0, OPEN_LIMITS, SystemClock())
        sweeper.forget_fleet()
        sweeper.close()


def trip_line(label: str, s: Stats) -> str:
    return f"{label:<32} p50 {s.p50:.3f} ms, p99 {s.p99:.3f} ms, max {s.max:.3f} ms (n={s.n})"


def tick_line(label: str, w: WorkerTicks) -> str:
    n, t = w.non_trading, w.trading
    return (
        f"{label:<28} non-trading p50/p99 {n.p50:.2f}/{n.p99:.2f} ms (n={n.n}), "
        f"trading p50/p99 {t.p50:.2f}/{t.p99:.2f} ms (n={t.n})"
    )


def against_alone(w: WorkerTicks, alone: WorkerTicks) -> str:
    """A fleet worker's ticks next to one worker alone (ratios of p50 and p99) and the single
    worker's targets (README Performance): is scaling out keeping them?"""
    n, t, a, b = w.non_trading, w.trading, alone.non_trading, alone.trading
    met = n.p99 <= TARGET_P99_QUIET_MS and t.p99 <= TARGET_P99_TRADING_MS
    return (
        f"  {w.instance} / alone: non-trading p50 x{n.p50 / a.p50:.2f} p99 x{n.p99 / a.p99:.2f}, "
        f"trading p50 x{t.p50 / b.p50:.2f} p99 x{t.p99 / b.p99:.2f}; targets (p99 <= "
        f"{TARGET_P99_QUIET_MS:g} / {TARGET_P99_TRADING_MS:g} ms) {'met' if met else 'MISSED'}"
    )


def run_fleet_bench(
    options: BenchOptions, reservations: int, workers: int, ticks: int, interval_s: float,
    out: Callable[[str], None] = print,
) -> None:  # fmt: skip
    out(f"fleet benchmark: {workers} workers x {options.symbols} symbols x {options.venues} venues, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    out(f"redis reply parser: {reply_parser()}")
    trips = reservation_round_trips(reservations)
    out(trip_line("reservation round trip (admit)", trips.admit))
    out(trip_line("release after the tick", trips.release))
    out(trip_line("one GET on that connection", trips.floor))
    out(f"  target p99 <= 1 ms: {'met' if trips.admit.p99 <= 1.0 else 'MISSED'}; "
        f"load average now {os.getloadavg()[0]:.2f}")  # fmt: skip
    alone = fleet_ticks(options, 1, ticks, interval_s, fleet=False)[0]
    out(tick_line("one worker, Redis, no fleet", alone))
    solo = fleet_ticks(options, 1, ticks, interval_s, fleet=True)[0]
    out(tick_line("one worker, fleet", solo))
    met = alone.non_trading.p99 <= TARGET_P99_QUIET_MS and alone.trading.p99 <= TARGET_P99_TRADING_MS
    load = os.getloadavg()[0]
    out(f"  one worker alone: targets {'met' if met else 'MISSED'}; load average now {load:.2f}")
    for w in fleet_ticks(options, workers, ticks, interval_s, fleet=True):
        out(tick_line(f"fleet of {workers}: {w.instance}", w))
        out(against_alone(w, alone))
    out(f"load average at the end {os.getloadavg()[0]:.2f}")
