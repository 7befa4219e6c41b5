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
from arbitrage.bench.figures import Stats, loop_figures
from arbitrage.bench.options import REDIS_URL, BenchOptions, bench_config
from arbitrage.clock import SystemClock
from arbitrage.config import AppConfig, FleetConfig, RedisConfig
from arbitrage.store.risk_budget import BalanceWant, Limits, RiskBudget

# Limits no benchmark reaches: every reservation runs the whole script, none stops early.
OPEN_LIMITS = Limits(
    max_exposure=1e15, max_open_positions=10**6, daily_loss_limit=1e15, max_orders_per_minute=10**9
)


@dataclass(frozen=True)
class RoundTrips:
    reserve: Stats
    release: Stats


def reservation_round_trips(n: int, held_per_worker: int = 5, workers: int = 3) -> RoundTrips:
    """Time `n` reservations (and their releases) against a fleet whose other workers each hold
    `held_per_worker` positions, as a trading fleet's would."""
    prefix = f"bench-fleet-{os.getpid()}"
    clock = SystemClock()
    budgets = [RiskBudget(REDIS_URL, prefix, f"w{i}", 60.0, OPEN_LIMITS, clock) for i in range(workers)]
    me = budgets[0]
    wants = [BalanceWant("upbit", "KRW", 1e6, 1e12), BalanceWant("binance", "BTC", 0.01, 1e6)]
    try:
        for other in budgets[1:]:
            other.rebuild({f"{other.instance}-{k}": 1e6 for k in range(held_per_worker)})
        reserve, release = [], []
        for i in range(n):
            t0 = time.perf_counter()
            refused = me.reserve(f"p{i}", 1e6, wants, ("upbit", "binance"), "2026-01-01")
            t1 = time.perf_counter()
            me.sync({})
            t2 = time.perf_counter()
            if refused is not None:
                raise RuntimeError(f"benchmark reservation refused: {refused}")
            reserve.append((t1 - t0) * 1000.0)
            release.append((t2 - t1) * 1000.0)
        return RoundTrips(Stats.of(reserve), Stats.of(release))
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
    figures = loop_figures(run)
    return WorkerTicks(instance, ticks, figures.non_trading, figures.trading)


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


def tick_line(label: str, w: WorkerTicks) -> str:
    n, t = w.non_trading, w.trading
    return (
        f"{label:<28} non-trading p50/p99 {n.p50:.2f}/{n.p99:.2f} ms (n={n.n}), "
        f"trading p50/p99 {t.p50:.2f}/{t.p99:.2f} ms (n={t.n})"
    )


def run_fleet_bench(
    options: BenchOptions, reservations: int, workers: int, ticks: int, interval_s: float,
    out: Callable[[str], None] = print,
) -> None:  # fmt: skip
    out(f"fleet benchmark: {workers} workers x {options.symbols} symbols x {options.venues} venues, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    trips = reservation_round_trips(reservations)
    r, x = trips.reserve, trips.release
    out(f"reservation round trip (Lua, loopback): p50 {r.p50:.3f} ms, p99 {r.p99:.3f} ms, max {r.max:.3f} ms "
        f"(n={r.n}); release p50 {x.p50:.3f} ms, p99 {x.p99:.3f} ms")  # fmt: skip
    out(f"  target p99 <= 1 ms: {'met' if r.p99 <= 1.0 else 'MISSED'}")
    alone = fleet_ticks(options, 1, ticks, interval_s, fleet=False)[0]
    out(tick_line("one worker, Redis, no fleet", alone))
    solo = fleet_ticks(options, 1, ticks, interval_s, fleet=True)[0]
    out(tick_line("one worker, fleet", solo))
    for w in fleet_ticks(options, workers, ticks, interval_s, fleet=True):
        out(tick_line(f"fleet of {workers}: {w.instance}", w))
