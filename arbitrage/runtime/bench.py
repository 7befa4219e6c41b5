"""The loop's benchmark: tick time per stage, memory growth, a bare baseline, schedule accuracy, cold start.

Drives the real loop (wiring.build_bot plus the Supervisor hook, file logging, no console) in mock
mode on a synthetic market of N assets on V venues; bench_figures turns what it records into figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil

from arbitrage.clock import Clock, SystemClock
from arbitrage.config import AppConfig, parse_config
from arbitrage.domain.book import MarketSnapshot
from arbitrage.ops.alerts import LogAlerter
from arbitrage.ops.logs import reset_logging, setup_logging
from arbitrage.ops.metrics import BotMetrics
from arbitrage.ops.sysmonitor import SysMonitor
from arbitrage.ops.watchdog import Watchdog
from arbitrage.runtime.bench_figures import BenchResult, Stats, loop_figures, report_lines, schedule_figures
from arbitrage.runtime.loop import TickHook, TickReport
from arbitrage.runtime.market_feed import MarketFeed
from arbitrage.runtime.supervisor import Supervisor
from arbitrage.runtime.wiring import build_bot, build_fx
from arbitrage.venues.build import build_mock_venues

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/14"
LEDGER_WRITES = ("transaction", "next_sequence", "record_opportunity", "insert_orders", "update_order",
                 "record_fill", "save_position", "record_hedge_event", "add_daily_pnl")  # fmt: skip
RSS_SAMPLES = 10  # RSS is read this many times over the measured ticks, to show the trend


@dataclass(frozen=True)
class BenchOptions:
    workdir: Path
    symbols: int = 20
    venues: int = 2
    ticks: int = 20_000  # measured ticks per loop run, after the warm-up
    warmup: int = 200
    synchronous: tuple[str, ...] = ("FULL", "NORMAL")
    fx_source: str = "venue"
    seed: int = 42
    redis: bool = False
    baseline_ticks: int = 5_000
    schedule_ticks: int = 200
    schedule_interval_s: float = 0.05
    late_tick: int = 50
    late_by_s: float = 0.12
    cold_runs: int = 5
    noise_samples: int = 2_000


def bench_config(
    options: BenchOptions, synchronous: str, *, redis_prefix: str | None = None, interval_s: float = 0.0
) -> AppConfig:
    """N synthetic assets on V mock venues quoting KRW and USDT in turn, funded far beyond any trade."""
    if options.venues < 2 or options.symbols < 1:
        raise ValueError("the benchmark needs at least 1 symbol and 2 venues")
    assets = [f"X{i:03d}" for i in range(options.symbols)]
    # Prices across five orders of magnitude, so that both venues' tick and step rules get exercised.
    prices = {a: 2_000.0 * 10 ** (i % 5) * (1.0 + i / 13.0) for i, a in enumerate(assets)}
    venues: dict[str, Any] = {}
    for v in range(options.venues):
        krw = v % 2 == 0
        funds = {"KRW": 1e13} if krw else {"USDT": 1e10}
        funds.update({a: 1e12 / prices[a] for a in assets})
        venues[f"venue{v}"] = {"exchange": "mock", "quote": "KRW" if krw else "USDT",
                               "taker_fee_pct": 0.05 if krw else 0.1, "balances": funds}  # fmt: skip
    data: dict[str, Any] = {
        "instance": "bench",
        "symbols": assets,
        "mode": {"current": "mock"},
        "loop": {"interval_s": interval_s},
        "venues": venues,
        "fx": {"source": options.fx_source, "venue": "venue0", "fixed": {"USDT": 1380.0}},
        # Ticks back to back compress minutes of trading into seconds: a per-minute order limit
        # would turn nearly every tick into an ORDER_RATE rejection and hide the trading path.
        "safety": {"halt_file": str(options.workdir / ".halt"), "max_orders_per_minute": 10**9},
        "mock": {"seed": options.seed, "assets": {a: {"price": p} for a, p in prices.items()}},
        "storage": {"synchronous": synchronous},
        "logging": {"console": False},
        # Back to back, ticks keep a core busy and turn a few rejections per tick into thousands
        # per minute: that is the point here, not an alarm that should stop the run.
        "sys_monitor": {"warn_cpu_pct": 1000, "max_cpu_pct": 1000},
        "watchdog": {"warn_safety_rejections_per_minute": 1e9, "max_safety_rejections_per_minute": 1e9},
    }
    if redis_prefix is not None:
        data["redis"] = {"enabled": True, "url": REDIS_URL, "key_prefix": redis_prefix}
    return parse_config(data)


# Measuring the loop ----------------------------------------------------------------------------


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
    """The last tick hook: each tick's total and stage times, in arrays sized up front so that
    recording allocates nothing while memory is being measured."""

    def __init__(self, stages: Sequence[str], size: int, timers: dict[str, CallTimer], warmup: int) -> None:
        self.stages = list(stages)
        self.columns = {s: array("d", bytes(8 * size)) for s in self.stages}
        self.total = array("d", bytes(8 * size))
        self.started = array("d", bytes(8 * size))
        self.traded = array("b", bytes(size))
        self.n = 0
        self.rss: list[tuple[int, float]] = []  # (ticks done, MB), from the end of the warm-up on
        step = max(1, (size - warmup) // RSS_SAMPLES)
        self._rss_at = {min(size, warmup + i * step) for i in range(RSS_SAMPLES + 1)} | {max(1, warmup)}
        self._size = size
        self._timers = timers
        self._last = time.perf_counter()

    def start(self) -> None:
        self._last = time.perf_counter()

    def after_tick(self, report: TickReport) -> int | None:
        now = time.perf_counter()
        i = self.n
        if i >= self._size:
            return None
        self.total[i] = (now - self._last) * 1000.0
        columns = self.columns
        for name, ms in report.stage_ms.items():
            column = columns.get(name)
            if column is not None:
                column[i] = ms
        for name, timer in self._timers.items():
            columns[name][i] = timer.take()
        if "heartbeat" in columns:
            # The Supervisor's watchdog stage includes the heartbeat; keep the stages disjoint.
            columns["watchdog"][i] -= columns["heartbeat"][i]
        self.traded[i] = report.traded
        self.started[i] = report.started_at
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
    schedule_errors_ms: list[float]
    heartbeat: bool
    groups: int  # entries and exits carried out


def run_loop(options: BenchOptions, synchronous: str, ticks: int, workdir: Path, *, warmup: int = 0,
             interval_s: float = 0.0, extra_hooks: Sequence[TickHook] = ()) -> LoopRun:  # fmt: skip
    """Build the bot as a real run does, tick it `warmup + ticks` times and record every tick."""
    clock = SystemClock()
    redis_prefix = f"bench-{os.getpid()}" if options.redis else None
    config = bench_config(options, synchronous, redis_prefix=redis_prefix, interval_s=interval_s)
    setup_logging(workdir / "logs", config.logging.level, console=False,
                  backup_count=config.logging.backup_count)  # fmt: skip
    alerter = LogAlerter()
    redis = None
    if config.redis.enabled:
        from arbitrage.store.redis_state import RedisState

        redis = RedisState.from_config(config.redis, config.instance, clock)
    bot = build_bot(config, data_dir=workdir / "data", interval_s=interval_s, max_ticks=warmup + ticks,
                    alert=alerter.send, env={}, clock=clock)  # fmt: skip
    try:
        supervisor = Supervisor(config, clock, bot.state, Watchdog(config.watchdog),
                                SysMonitor(config.sys_monitor, clock), BotMetrics(), alerter, redis,
                                ws_lag=bot.feed.ws_lag)  # fmt: skip
        timers = {"ledger": CallTimer(), "sysmonitor": CallTimer()}
        instrument(bot.ledger, LEDGER_WRITES, timers["ledger"])
        bot.loop.sys_sample = timers["sysmonitor"].wrap(supervisor.sys_sample)
        if redis is not None:
            timers["heartbeat"] = CallTimer()
            instrument(redis, ("heartbeat", "heartbeat_age_ms"), timers["heartbeat"])
        engines = list(config.engines)
        stages = ["snapshot", "residuals", *engines, *(f"{e}.orders" for e in engines),
                  "logging", "sysmonitor", "watchdog", *timers]  # fmt: skip
        recorder = TickRecorder(list(dict.fromkeys(stages)), warmup + ticks, timers, warmup)
        bot.loop.hooks.extend([supervisor, *extra_hooks, recorder])
        started = time.perf_counter()
        recorder.start()
        code = bot.loop.run()
        wall = time.perf_counter() - started
        if recorder.rss[-1][0] != recorder.n:  # stopped early: the memory trend ends where the run did
            recorder.rss.append((recorder.n, rss_mb()))
        counters = bot.state.counters
        return LoopRun(synchronous, recorder, warmup, wall, code, bot.loop.stop_reason,
                       list(bot.loop.schedule_errors_ms), redis is not None,
                       counters.entries + counters.exits)  # fmt: skip
    finally:
        bot.close()
        alerter.close(1.0)
        if redis is not None:
            _drop_redis_keys(redis)
            redis.close()
        reset_logging()


def _drop_redis_keys(redis: Any) -> None:
    import redis as redis_py  # only with --redis: the keys this run wrote under its own prefix

    client = redis_py.Redis.from_url(REDIS_URL)
    try:
        client.delete(redis.heartbeat_key, redis.state_key, redis.events_key)
    finally:
        client.close()


# The bare baseline -----------------------------------------------------------------------------


def bare_best_spread(snapshot: MarketSnapshot, assets: Sequence[str],
                     venues: Sequence[tuple[str, str, float]]) -> float | None:  # fmt: skip
    """The least a spread bot must do: the best top-of-book net spread (%) over every asset and
    ordered venue pair, after both taker fees and FX. `venues` are (name, quote, taker fee %)."""
    books, fx = snapshot.books, snapshot.fx
    sides = [(name, fx[quote] * (1 + fee / 100), fx[quote] * (1 - fee / 100)) for name, quote, fee in venues]
    best: float | None = None
    for asset in assets:
        for buy_venue, buy_k, _ in sides:
            buy = books.get((buy_venue, asset))
            if buy is None or not buy.asks:
                continue
            cost = buy.asks[0][0] * buy_k
            for sell_venue, _, sell_k in sides:
                sell = books.get((sell_venue, asset)) if sell_venue != buy_venue else None
                if sell is None or not sell.bids:
                    continue
                net = (sell.bids[0][0] * sell_k - cost) / cost * 100.0
                if best is None or net > best:
                    best = net
    return best


def replay_snapshots(config: AppConfig, ticks: int) -> Iterator[MarketSnapshot]:
    """The snapshots a bot run of `config` saw, tick by tick: the mock market's path depends on its
    seed alone, never on how often it is read nor on what an earlier tick traded."""
    clock = SystemClock()
    venues = build_mock_venues(config, clock)
    symbols = {(v, a): config.venue_symbol(v, a) for v in config.venues for a in config.symbols}
    feed = MarketFeed(venues.by_name, symbols, config.loop.book_depth, build_fx(config, venues.by_name),
                      clock, before_tick=venues.before_tick)  # fmt: skip
    for _ in range(ticks):
        yield feed.snapshot()


def materialized(snapshot: MarketSnapshot) -> MarketSnapshot:
    """The snapshot with every book side a plain tuple, as a stream delivers it: the mock
    market's sides are built lazily (ScaledSide), which the bare loop must not pay for."""
    books = {key: replace(book, bids=tuple(book.bids), asks=tuple(book.asks))
             for key, book in snapshot.books.items()}  # fmt: skip
    return replace(snapshot, books=books)


def run_baseline(options: BenchOptions, ticks: int) -> list[float]:
    """Milliseconds per snapshot of bare_best_spread, over the snapshots the loop runs saw."""
    config = bench_config(options, "FULL")
    venues = [(name, v.quote, v.taker_fee_pct) for name, v in config.venues.items()]
    assets = list(config.symbols)
    perf = time.perf_counter
    times: list[float] = []
    for i, lazy in enumerate(replay_snapshots(config, options.warmup + ticks)):
        snapshot = materialized(lazy)
        t = perf()
        bare_best_spread(snapshot, assets, venues)
        if i >= options.warmup:
            times.append((perf() - t) * 1000.0)
    return times


# Start-up and the machine ----------------------------------------------------------------------


def cold_starts(runs: int, workdir: Path) -> list[float]:
    """Wall seconds of `scripts/run_live.py --mode mock --once`, process start to exit, each in a
    fresh working directory (so a first ledger is created each time)."""
    seconds: list[float] = []
    env = {k: v for k, v in os.environ.items() if k != "ARB_MODE"}
    for i in range(runs):
        cwd = workdir / f"cold{i}"
        cwd.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, str(REPO / "scripts" / "run_live.py"), "--mode", "mock", "--once",
                "--config", str(REPO / "config" / "live.yml")]  # fmt: skip
        t = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, check=False)  # fmt: skip
        seconds.append(time.perf_counter() - t)
        if done.returncode != 0:
            raise RuntimeError(f"cold start run exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return seconds


def fixed_work(n: int = 6_000) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def noise_floor(samples: int) -> list[float]:
    """Milliseconds of one fixed pure-Python workload, timed like a tick: what this machine's
    scheduler and other processes alone add to a p99 or a max."""
    perf = time.perf_counter
    times: list[float] = []
    for _ in range(samples):
        t = perf()
        fixed_work()
        times.append((perf() - t) * 1000.0)
    return times


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
    if options.cold_runs > 0:
        with tempfile.TemporaryDirectory(dir=options.workdir, prefix="cold-") as tmp:
            result.cold_s = cold_starts(options.cold_runs, Path(tmp))
        for line in report_lines(result, "cold"):
            out(line)
    for line in report_lines(result, "targets"):
        out(line)
    return result
