"""`arb replay`: the bot's whole run (wiring, engines, pair trader, ledger, recovery, shutdown) fed
from a recording instead of venues, on a clock that follows the data.

The clock is a FakeClock set to the first moment every recorded market has a book; the loop's wait
between ticks advances it by `loop.interval_s`, so a tick happens at every interval of data time and
never sleeps. Everything the ledger stamps comes from that clock and client order ids come from the
ledger's sequence, so the same recording and config write the same ledger.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from arbitrage.clock import Clock, FakeClock, SystemClock
from arbitrage.config import AppConfig, load_config
from arbitrage.domain.book import BookListener
from arbitrage.engines.registry import build_engines
from arbitrage.errors import ArbitrageError, ConfigError
from arbitrage.recording.tape import Tape, load_tape
from arbitrage.report.figures import Window, compute_report
from arbitrage.runtime.assembly import RunSettings, assemble
from arbitrage.runtime.session import trade_run
from arbitrage.runtime.wiring import lock_instance
from arbitrage.store.ledger_reader import read_ledger
from arbitrage.venues.base import AlertFn, Venues
from arbitrage.venues.replay import build_replay_venues

log = logging.getLogger("arbitrage.live_loop")

LEDGER_NAME = "ledger.sqlite3"
LIVE_DATA_DIR = Path("data")  # where `arb run` keeps its ledger by default: never replayed into
METRICS_LINE_S = 60.0  # data time between a replay's metrics lines


class ReplayInputError(ArbitrageError):
    """The replay cannot start from what it was given (exit 2): one sentence says why."""


@dataclass(frozen=True)
class ReplayOptions:
    data: Path
    config_path: str = "config/live.yml"
    start: str | None = None  # --from: ISO date or datetime, UTC
    end: str | None = None  # --to
    out: Path | None = None  # the run's directory (logs, state, ledger); default data/replays/<now>
    ledger: Path | None = None  # a SQLite file; an existing one is continued
    overrides: Mapping[str, Any] = field(default_factory=dict)  # dotted config keys (a sweep's variant)
    log_level: str | None = None


@dataclass(frozen=True)
class ReplayFigures:
    """`arb report`'s headline figures of one replay's ledger (money in the accounting currency)."""

    pnl: str  # Decimals as text: exact, and picklable across the sweep's processes
    trades: int
    closed: int
    win_rate: float | None
    fees: str
    hedge: str
    max_drawdown: str
    orders: int


@dataclass(frozen=True)
class ReplayResult:
    run_dir: Path
    ledger: Path
    start: float  # data time of the first tick
    end: float  # data time of the last
    ticks: int
    exit_code: int
    wall_s: float  # the whole replay, reading the recording included
    load_s: float  # reading the recording
    figures: ReplayFigures
    currency: str


def parse_when(value: str | None, option: str, end: bool) -> float | None:
    """An ISO date (a whole UTC day: --to includes it) or datetime (UTC unless it says otherwise)."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return (moment + timedelta(days=1)).timestamp() if end else moment.timestamp()
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ReplayInputError(
            f"{option} {value!r}: expected an ISO date (2026-12-03) or datetime (2026-12-03T09:30)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def replay_config(opts: ReplayOptions, ledger: Path, run_dir: Path) -> AppConfig:
    """The config as the replay runs it: its ledger, its halt file, and what must not run in a replay
    (live mode, the console's line per tick, the process monitor) turned off."""
    config = load_config(opts.config_path, None, overrides=opts.overrides)
    if config.loop.interval_s <= 0:
        raise ConfigError("loop.interval_s: expected above 0 in a replay (data time between ticks), found 0")
    replay = config.replay
    return config.model_copy(
        update={
            # A replay never sends an order: live mode's guards and dry run have nothing to guard.
            "mode": config.mode.model_copy(update={"current": _replay_mode(config.mode.current)}),
            # A replay's ledger is remade by replaying again: its commits need not wait for the disk.
            "storage": config.storage.model_copy(
                update={"url": f"sqlite:///{ledger}", "synchronous": "NORMAL"}
            ),
            # A live bot's halt file must not halt a replay, nor a replay's a live bot.
            "safety": config.safety.model_copy(update={"halt_file": str(run_dir / ".halt")}),
            "logging": config.logging.model_copy(update={"console": False}),
            # The replay runs flat out by design: its CPU says nothing about the bot's health.
            "sys_monitor": config.sys_monitor.model_copy(update={"enabled": False}),
            "redis": config.redis.model_copy(update={"enabled": config.redis.enabled and replay.redis}),
            "health_server": config.health_server.model_copy(
                update={"enabled": config.health_server.enabled and replay.health_server}
            ),
        }
    )


def check_markets(config: AppConfig, tape: Tape, data: Path) -> None:
    """Every market the config trades, and its FX market, must be in the recording."""
    recorded = tape.index()
    needed = [(v, config.venue_symbol(v, a)) for v in config.venues for a in config.symbols]
    if config.fx.source == "venue":
        needed.append((config.fx.venue, config.fx.symbol))
    missing = [f"{s} on {v}" for v, s in needed if (v, s) not in recorded]
    if missing:
        have = ", ".join(f"{s} on {v}" for v, s in sorted(recorded))
        raise ReplayInputError(f"--data {data} has no recording of {', '.join(missing)} (recorded: {have})")


def run_paths(opts: ReplayOptions) -> tuple[Path, Path]:
    """The run's directory and ledger. A fresh ledger unless --ledger names one: a replay must
    never write into a live bot's record."""
    run_dir = opts.out or LIVE_DATA_DIR / "replays" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    if opts.ledger is None:
        ledger = run_dir / LEDGER_NAME
        if ledger.exists():
            raise ReplayInputError(
                f"--out {run_dir} already holds a ledger: pick a new directory, or continue it with --ledger"
            )
        return run_dir, ledger
    live = (LIVE_DATA_DIR / LEDGER_NAME).resolve()
    if opts.ledger.resolve() == live:
        raise ReplayInputError(f"--ledger {opts.ledger} is the ledger `arb run` keeps: replay elsewhere")
    return run_dir, opts.ledger


def replay(opts: ReplayOptions, env: Mapping[str, str]) -> ReplayResult:
    """One replay, start to finish; its figures from the ledger it wrote."""
    started = time.perf_counter()
    run_dir, ledger = run_paths(opts)
    config = replay_config(opts, ledger, run_dir)
    engines = build_engines(config)
    start, end = parse_when(opts.start, "--from", False), parse_when(opts.end, "--to", True)
    if start is not None and end is not None and start >= end:
        raise ReplayInputError(f"--from {opts.start} is not before --to {opts.end}")
    loading = time.perf_counter()
    tape = load_tape(opts.data, start, end)
    load_s = time.perf_counter() - loading
    try:
        check_markets(config, tape, opts.data)
        # From --from when every market has a book standing then (the tape carries each one's last before it).
        first = tape.ready_at() if start is None else max(tape.ready_at(), start)
        last = tape.end
        if first > last:
            raise ReplayInputError(f"--data {opts.data}: not every market has a book in the range asked")
        interval = config.loop.interval_s
        ticks = int((last - first) // interval) + 1
        run_dir.mkdir(parents=True, exist_ok=True)
        ledger.parent.mkdir(parents=True, exist_ok=True)
        clock = FakeClock(start=first)
        lock = lock_instance(config, run_dir, SystemClock())  # a ledger a bot is using is refused here
        try:
            every = max(1, round(METRICS_LINE_S / interval))
            # The safety rejections' counts go to the ledger once a minute of data time too (the rows
            # come out the same), and the log files are written as their buffers fill, not line by
            # line: a replay that dies is replayed again, not recovered.
            settings = RunSettings(
                run_dir,
                run_dir / "logs",
                interval,
                ticks,
                opts.log_level,
                metrics_line_every=every,
                rejections_flush_s=METRICS_LINE_S,
                buffered_logs=True,
            )
            latency = config.replay.fill_latency_ms

            def venues(
                cfg: AppConfig,
                clk: Clock,
                _env: Mapping[str, str],
                _alert: AlertFn,
                _listen: Sequence[BookListener],
                _record: Sequence[BookListener],
            ) -> Venues:
                # A replay's venues signal no book: its loop ticks on the interval of data time.
                return build_replay_venues(cfg, clk, tape, latency)

            run_env = env if config.replay.telegram else _without(env, config)
            run = assemble(config, settings, run_env, clock, engines=engines, lock=lock, make_venues=venues)
            code = trade_run(run)
        finally:
            lock.release()
    finally:
        tape.close()  # the reader of levels ahead stops with the run
    return ReplayResult(
        run_dir,
        ledger,
        first,
        clock.time(),
        ticks,
        code,
        time.perf_counter() - started,
        load_s,
        ledger_figures(ledger, config, clock.time()),
        config.accounting_currency,
    )


def ledger_figures(ledger: Path, config: AppConfig, now: float) -> ReplayFigures:
    report = compute_report(
        read_ledger(f"sqlite:///{ledger}"), Window(utc_offset_h=config.safety.trading_day_utc_offset_h), now
    )
    return ReplayFigures(
        pnl=str(report.net),
        trades=report.trades,
        closed=report.closed,
        win_rate=report.win_rate,
        fees=str(report.fees),
        hedge=str(report.hedge),
        max_drawdown=str(report.drawdown.amount),
        orders=report.orders,
    )


def _without(env: Mapping[str, str], config: AppConfig) -> dict[str, str]:
    """The environment without the Telegram credentials: a replay's alerts go to its log only."""
    drop = {config.alerts.telegram_token_env, config.alerts.telegram_chat_id_env}
    return {k: v for k, v in env.items() if k not in drop}


def _replay_mode(mode: str) -> str:
    return "paper" if mode == "live" else mode
