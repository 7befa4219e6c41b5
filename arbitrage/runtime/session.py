"""One run of the bot, start to exit: config, logging, guards, the bot, its watchers, signals,
the loop and the graceful shutdown. Returns the process exit code (see docs/ARCHITECTURE.md, Exit codes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arbitrage.clock import SystemClock
from arbitrage.config import AppConfig, load_config
from arbitrage.engines.base import Engine
from arbitrage.engines.registry import build_engines
from arbitrage.errors import ConfigError, LiveRefused
from arbitrage.ops.alerts import build_alerter
from arbitrage.ops.health_server import HealthServer, HealthStatus
from arbitrage.ops.live_guards import DryRunGate, check_live_guards
from arbitrage.ops.logs import RedactingFilter, secrets_from_env, setup_logging
from arbitrage.ops.metrics import BotMetrics
from arbitrage.ops.sysmonitor import SysMonitor
from arbitrage.ops.watchdog import Level, Watchdog
from arbitrage.runtime import failpoints
from arbitrage.runtime.loop import TickHook
from arbitrage.runtime.shutdown import Shutdown, state_document
from arbitrage.runtime.stop_signals import StopSignals
from arbitrage.runtime.supervisor import DryRunHook, Supervisor
from arbitrage.runtime.wiring import Bot, build_bot, lock_instance
from arbitrage.store.instance_lock import InstanceLock
from arbitrage.url_credentials import mask_url_credentials

log = logging.getLogger("arbitrage.live_loop")

EXIT_LEASE_LOST = 3  # the exit code of a CRITICAL shutdown: the operator must look before a restart


@dataclass(frozen=True)
class RunOptions:
    config_path: str
    mode: str | None = None
    max_ticks: int | None = None
    interval_s: float | None = None
    seed: int | None = None
    log_dir: Path = Path("logs")
    data_dir: Path = Path("data")
    log_level: str | None = None


def prepare_config(opts: RunOptions) -> AppConfig:
    config = load_config(opts.config_path, opts.mode)
    if opts.seed is not None:
        config = config.model_copy(update={"mock": config.mock.model_copy(update={"seed": opts.seed})})
    return config


def run_session(opts: RunOptions, env: Mapping[str, str]) -> int:
    config = prepare_config(opts)  # ConfigError -> exit 2 before anything starts
    redactor = RedactingFilter(secrets_from_env(config, env))
    try:
        return _run(opts, config, env)
    except BaseException as err:
        # The CLI prints what escapes, outside the logging redaction: mask secret values here.
        _redact_exception(err, redactor)
        raise


def _redact_exception(err: BaseException, redactor: RedactingFilter) -> None:
    """Rewrite the messages of an exception and of its causes in place, secret values masked."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(redactor.redact(a) if isinstance(a, str) else a for a in current.args)
        if isinstance(current, ConfigError):
            current.problems = [redactor.redact(p) for p in current.problems]
        if isinstance(current, LiveRefused):
            current.failed = [redactor.redact(f) for f in current.failed]
        if isinstance(current, OSError) and isinstance(current.strerror, str):
            current.strerror = redactor.redact(current.strerror)
        current = current.__cause__ or current.__context__


def _run(opts: RunOptions, config: AppConfig, env: Mapping[str, str]) -> int:
    # A user engine that cannot load is a config error too: found before logs/ or data/ exist.
    engines = build_engines(config)
    mode = config.mode.current
    if mode == "live":
        failed = check_live_guards(config, env, Path.cwd())
        if failed:
            raise LiveRefused(failed)
    clock = SystemClock()
    # One bot per ledger: a second one is refused here, before it logs, touches the ledger or trades.
    lock = lock_instance(config, opts.data_dir, clock)
    try:
        return _run_locked(opts, config, env, engines, clock, lock)
    finally:
        lock.release()  # after the ledger is closed; the kernel or the server frees it should we die


def _run_locked(
    opts: RunOptions,
    config: AppConfig,
    env: Mapping[str, str],
    engines: Sequence[Engine],
    clock: SystemClock,
    lock: InstanceLock,
) -> int:
    mode = config.mode.current
    log_health = setup_logging(
        opts.log_dir,
        opts.log_level or config.logging.level,
        console=config.logging.console,
        backup_count=config.logging.backup_count,
        secrets=secrets_from_env(config, env),
    )
    alerter = build_alerter(config.alerts, env, clock, log_health)
    redis = None
    if config.redis.enabled:
        from arbitrage.store.redis_state import RedisState

        redis = RedisState.from_config(config.redis, config.instance, clock)
    sysmon = SysMonitor(config.sys_monitor, clock) if config.sys_monitor.enabled else None
    metrics = BotMetrics()
    started = time.monotonic()

    def alert(key: str, text: str, level: str = "ERROR") -> None:
        text = mask_url_credentials(text)  # Redis and Telegram are outside the log's redaction
        alerter.send(key, text, level)
        if redis is not None:
            redis.publish("alert", {"key": key, "text": text, "level": level})

    # A bot that can no longer prove it is alone on its ledger must not trade on: another one may
    # already be starting on it. The lease is lost from its heartbeat thread, possibly before the
    # bot below exists; either way the run ends through the graceful shutdown with exit 3.
    lease_lost = threading.Event()
    built: list[Bot] = []

    def on_lease_lost(text: str) -> None:
        alert("instance_lease", f"{text}; stopping this bot", "CRITICAL")
        lease_lost.set()
        if built:
            built[0].loop.request_stop("instance lease lost", EXIT_LEASE_LOST)

    lock.watch(on_lease_lost)
    interval = opts.interval_s if opts.interval_s is not None else config.loop.interval_s
    bot = build_bot(
        config,
        data_dir=opts.data_dir,
        interval_s=interval,
        max_ticks=opts.max_ticks,
        alert=alert,
        env=env,
        clock=clock,
        engines=engines,
        publish=redis.publish if redis is not None else None,
    )
    built.append(bot)
    if lease_lost.is_set():
        bot.loop.request_stop("instance lease lost", EXIT_LEASE_LOST)
    supervisor = Supervisor(
        config,
        clock,
        bot.state,
        Watchdog(config.watchdog),
        sysmon,
        metrics,
        alerter,
        redis,
        ws_lag=bot.feed.ws_lag,
        snapshot=lambda: state_document(bot, "running", 0),
        log_health=log_health,
    )
    bot.loop.sys_sample = supervisor.sys_sample
    hooks: list[TickHook] = [supervisor]
    dry_run: DryRunHook | None = None
    if mode == "live":
        dry_run = DryRunHook(
            DryRunGate(config.live_guards.dry_run_cycles),
            bot.state,
            config.live_guards.dry_run_cycles,
            len(config.symbols) * len(config.venues),
            lambda: _balances_readable(bot),
        )
        hooks.append(dry_run)
    bot.loop.hooks.extend(hooks)

    health: HealthServer | None = None
    if config.health_server.enabled:
        health = HealthServer(
            config.health_server.host,
            config.health_server.port,
            lambda: _health(bot, supervisor, started),
            metrics,
            max_connections=config.health_server.max_connections,
            request_timeout_s=config.health_server.request_timeout_s,
        )
        health.start()
        bot.extras["health_url"] = health.url

    shutdown = Shutdown(
        bot, alert, opts.data_dir / "state.json", save_remote=redis.save_state if redis is not None else None
    )
    signals = StopSignals(
        request_stop=lambda reason: bot.loop.request_stop(reason, 0),
        stopping=lambda: shutdown.in_progress or bot.loop.stopping,
    )
    signals.install()
    log.info(
        "starting %s in %s mode: %d venues, %d assets, interval %.3fs, ticks %s, ledger %s",
        config.instance,
        mode,
        len(config.venues),
        len(config.symbols),
        interval,
        opts.max_ticks or "unlimited",
        mask_url_credentials(str(config.storage.url or opts.data_dir / "ledger.sqlite3")),
    )
    log.info("holding %s: a second bot here is refused", "; ".join(lock.where))
    alert("start", f"{config.instance} started in {mode} mode", "INFO")
    code = 1
    reason = "unexpected failure"
    try:
        code = bot.loop.run()
        reason = supervisor.stop_reason or bot.loop.stop_reason or "finished"
    except BaseException as err:
        log.exception("loop failed: %s", err)
        raise
    finally:
        try:
            shutdown.run(reason, code)
        finally:
            # The handlers stay installed until the process exits: a stop signal from here on is
            # logged and ignored, and the exit code stays that of the first stop.
            signals.shutdown_finished(code)
            if health is not None:
                health.stop()
            bot.close()
            alerter.close(2.0)
            if redis is not None:
                redis.close()
            failpoints.pause("session.closed")
    if dry_run is not None and dry_run.refused:
        raise LiveRefused(dry_run.refused)
    return code


def _balances_readable(bot: Bot) -> bool:
    try:
        for name, venue in bot.venues.by_name.items():
            bot.state.balances[name] = venue.balances()
    except Exception as err:
        log.warning("balances unreadable during the dry run: %s", err)
        return False
    return True


def _health(bot: Bot, supervisor: Supervisor, started: float) -> HealthStatus:
    wd = supervisor.last_report
    level = wd.level if wd else Level.OK
    last = bot.loop.last_tick_wall
    state = bot.state
    # This runs on the HTTP thread while the loop mutates the state: copy the containers in one
    # C-level call each, so iterating them here cannot meet a dict changing size.
    positions = list(state.positions.values())
    unhedged = dict(state.unhedged)
    venues = dict(bot.venues.by_name)
    detail: dict[str, Any] = {
        "instance": bot.config.instance,
        "mode": state.mode,
        "uptime_s": round(time.monotonic() - started, 3),
        "last_tick_age_s": None if last is None else round(bot.clock.time() - last, 3),
        "ticks": state.counters.ticks,
        "stopping": bot.loop.stopping,
        "entries_blocked": state.entries_blocked,
        "halted": state.halted,
        **supervisor.detail(),
        "venues": {name: venue.describe() for name, venue in venues.items()},
        "positions": [
            {
                "position_id": p.position_id,
                "asset": p.asset,
                "buy_venue": p.buy_venue,
                "sell_venue": p.sell_venue,
                "qty": str(p.qty),
                "opened_at": p.opened_at,
            }
            for p in positions
        ],
        "daily_pnl": {"day": state.day, "realized": str(state.daily_realized)},
        "unhedged": {f"{v}:{a}": str(q) for (v, a), q in unhedged.items()},
    }
    return HealthStatus(level, detail)
