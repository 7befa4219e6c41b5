"""A whole run put together in one place, for `arb run`, the benchmark and what comes next (a
replay): logging, alerts, Redis, the bot, its supervisor and dry-run gate, the health server, the
graceful shutdown and the stop signals. The venues and the clock are injected; everything else
follows from the config and the RunSettings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from arbitrage.clock import Clock
from arbitrage.config import AppConfig
from arbitrage.engines.base import Engine
from arbitrage.errors import ConfigError
from arbitrage.ops.alerts import AlertFanout, build_alerter
from arbitrage.ops.health_server import Control, HealthServer
from arbitrage.ops.live_guards import DryRunGate
from arbitrage.ops.logs import secrets_from_env, setup_logging, write_out_logs
from arbitrage.ops.metrics import BotMetrics
from arbitrage.ops.sysmonitor import SysMonitor
from arbitrage.ops.telegram_commands import TelegramCommands
from arbitrage.runtime.console_state import ConsoleHook, EventLog
from arbitrage.runtime.health_status import health_status
from arbitrage.runtime.loop import LiveLoop, TickHook
from arbitrage.runtime.operator_commands import OperatorCommands
from arbitrage.runtime.operator_control import OperatorControl
from arbitrage.runtime.recorder_watch import RecorderWatch
from arbitrage.runtime.rejection_log import FLUSH_S
from arbitrage.runtime.shutdown import Shutdown, state_document
from arbitrage.runtime.stop_signals import StopSignals
from arbitrage.runtime.supervisor import DryRunHook, Supervisor, SupervisorConfig
from arbitrage.runtime.wiring import Bot, VenueFactory, build_bot
from arbitrage.store.instance_lock import InstanceLock
from arbitrage.store.ledger import ledger_url
from arbitrage.url_credentials import mask_url_credentials
from arbitrage.venues.base import AlertFn
from arbitrage.venues.build import build_venues

if TYPE_CHECKING:  # redis-py and pyarrow are imported only by runs that enable Redis or recording
    from arbitrage.recording.recorder import Recorder
    from arbitrage.store.redis_state import RedisState
    from arbitrage.store.risk_budget import RiskBudget

log = logging.getLogger("arbitrage.live_loop")

EXIT_LEASE_LOST = 3  # the exit code of a CRITICAL shutdown: the operator must look before a restart


@dataclass(frozen=True)
class RunSettings:
    """What a run takes besides its config: where it writes, how fast and how long it ticks."""

    data_dir: Path
    log_dir: Path
    interval_s: float
    max_ticks: int | None
    log_level: str | None = None  # None: logging.level from the config
    metrics_line_every: int = 1  # ticks between metrics lines (a replay's data-time minute)
    rejections_flush_s: float = FLUSH_S  # between writes of the safety rejections' counts
    buffered_logs: bool = False  # log files written as their buffers fill (a replay), not per record


class LeaseLostStop:
    """A bot that can no longer prove it is alone on its ledger must not trade on: another one may
    already be starting on it. The lease is lost from its heartbeat thread, possibly before the
    loop exists; either way the run ends through the graceful shutdown with exit 3.
    """

    def __init__(self, alert: AlertFn) -> None:
        self._alert = alert
        self._lost = threading.Event()
        self._loop: LiveLoop | None = None

    def __call__(self, text: str) -> None:
        self._alert("instance_lease", f"{text}; stopping this bot", "CRITICAL")
        self._lost.set()
        if self._loop is not None:
            self._loop.request_stop("instance lease lost", EXIT_LEASE_LOST)

    def stop(self, loop: LiveLoop) -> None:
        """From now on a lost lease stops this loop; if it is lost already, it stops now."""
        self._loop = loop
        if self._lost.is_set():
            loop.request_stop("instance lease lost", EXIT_LEASE_LOST)


@dataclass
class Run:
    """The parts of one run; `start`, `loop`, `finish` in that order (the benchmark ticks the
    loop itself and only `close`s)."""

    config: AppConfig
    settings: RunSettings
    bot: Bot
    alerts: AlertFanout
    redis: RedisState | None
    supervisor: Supervisor
    dry_run: DryRunHook | None
    health: HealthServer | None
    shutdown: Shutdown
    signals: StopSignals
    lock: InstanceLock | None
    console: ConsoleHook
    commands: TelegramCommands | None = None
    recorder: Recorder | None = None
    budget: RiskBudget | None = None
    closed: bool = False

    def start(self) -> None:
        """Serve health, take the stop signals, and say what runs."""
        config = self.config
        if self.health is not None:
            self.health.start()
        self.signals.install()
        if self.commands is not None:
            self.commands.start()
        log.info(
            "starting %s in %s mode: %d venues, %d assets, interval %.3fs, ticks %s, ledger %s",
            config.instance,
            config.mode.current,
            len(config.venues),
            len(config.symbols),
            self.settings.interval_s,
            self.settings.max_ticks or "unlimited",
            mask_url_credentials(str(config.storage.url or self.settings.data_dir / "ledger.sqlite3")),
        )
        if self.lock is not None:
            log.info("holding %s: a second bot here is refused", "; ".join(self.lock.where))
        self.alerts.send("start", f"{config.instance} started in {config.mode.current} mode", "INFO")

    def loop(self) -> tuple[int, str]:
        """Tick until the loop stops; its exit code and why it stopped."""
        code = self.bot.loop.run()
        return code, self.supervisor.stop_reason or self.bot.loop.stop_reason or "finished"

    def finish(self, reason: str, code: int) -> None:
        """The graceful shutdown, then every part closed even if the shutdown failed."""
        try:
            self.shutdown.run(reason, code)
        finally:
            # The handlers stay installed until the process exits: a stop signal from here on is
            # logged and ignored, and the exit code stays that of the first stop.
            self.signals.shutdown_finished(code)
            self.close()

    def close(self) -> None:
        """Once; a second call (a caller's own cleanup after finish) does nothing."""
        if self.closed:
            return
        self.closed = True
        try:
            self._close_parts()
        finally:
            if self.settings.buffered_logs:  # every line in its file when the run returns
                write_out_logs()

    def _close_parts(self) -> None:
        if self.commands is not None:
            self.commands.stop()
        if self.health is not None:
            self.health.stop()
        try:
            self.bot.close()
        finally:
            # After the venues: no stream delivers a book any more, so every one is in a file.
            if self.recorder is not None:
                self.recorder.close()
        self.alerts.close(2.0)
        if self.budget is not None:
            if self.bot.shared_budget is not None:
                self.bot.shared_budget.finish()
            self.budget.close()
        if self.redis is not None:
            self.redis.close()


def assemble(
    config: AppConfig,
    settings: RunSettings,
    env: Mapping[str, str],
    clock: Clock,
    *,
    engines: Sequence[Engine] | None = None,
    lock: InstanceLock | None = None,
    make_venues: VenueFactory = build_venues,
) -> Run:
    """Logging first (so that the ledger's and venues' first lines are kept), then the alerts and
    Redis the bot reports to, the bot (which opens the ledger, builds the venues and recovers),
    and what watches and stops it. Nothing is started or installed until Run.start()."""
    log_health = setup_logging(
        settings.log_dir,
        settings.log_level or config.logging.level,
        console=config.logging.console,
        backup_count=config.logging.backup_count,
        secrets=secrets_from_env(config, env),
        buffered=settings.buffered_logs,
    )
    alerter = build_alerter(config.alerts, env, clock, log_health)
    redis = _redis_state(config, clock)
    budget = _risk_budget(config, clock)
    metrics = BotMetrics()
    started = time.monotonic()
    # Every event (trades, hedges, alerts) passes the console's ring buffer on its way to Redis.
    events = EventLog(clock, redis.publish if redis is not None else None)
    alerts = AlertFanout(alerter, events.publish)
    lease_lost = LeaseLostStop(alerts.send)
    if lock is not None:
        lock.watch(lease_lost)
    recorder = _started_recorder(config, clock, make_venues)
    try:
        bot = build_bot(
            config,
            data_dir=settings.data_dir,
            interval_s=settings.interval_s,
            max_ticks=settings.max_ticks,
            metrics_line_every=settings.metrics_line_every,
            rejections_flush_s=settings.rejections_flush_s,
            alert=alerts.send,
            env=env,
            clock=clock,
            engines=engines,
            publish=events.publish,
            make_venues=make_venues,
            recorders=(recorder,) if recorder is not None else (),
            risk_budget=budget,
        )
    except BaseException:
        if recorder is not None:
            recorder.close()
        raise
    lease_lost.stop(bot.loop)
    supervisor = Supervisor(
        SupervisorConfig.of(config),
        clock,
        bot.state,
        SysMonitor(config.sys_monitor, clock) if config.sys_monitor.enabled else None,
        # Only the health server's /metrics reads them: without it, a tick's export is for no one.
        metrics if config.health_server.enabled else None,
        alerter,
        redis,
        ws_lag=bot.feed.ws_lag,
        snapshot=lambda: state_document(bot, "running", 0),
        log_health=log_health,
    )
    bot.loop.sys_sample = supervisor.sys_sample
    dry_run = _dry_run(config, bot)
    console = _console(config, env, clock, bot, supervisor, events, redis)
    watch = RecorderWatch(recorder, metrics, alerts.send, clock) if recorder is not None else None
    # In this order after each tick: the supervisor may stop the run before the others look at it.
    hooks: list[TickHook | None] = [supervisor, watch, dry_run, console]
    bot.loop.hooks.extend(hook for hook in hooks if hook is not None)
    shutdown = Shutdown(
        bot,
        alerts.send,
        settings.data_dir / "state.json",
        save_remote=redis.save_state if redis is not None else None,
    )
    signals = StopSignals(
        request_stop=lambda reason: bot.loop.request_stop(reason, 0),
        stopping=lambda: shutdown.in_progress or bot.loop.stopping,
    )
    control = OperatorControl(Path(config.safety.halt_file), signals.request, clock)
    health = _health_server(config, env, bot, supervisor, started, metrics, console, control)
    commands = _telegram_commands(config, env, settings, bot, console, control)
    return Run(
        config,
        settings,
        bot,
        alerts,
        redis,
        supervisor,
        dry_run,
        health,
        shutdown,
        signals,
        lock,
        console,
        commands,
        recorder,
        budget,
    )


def _redis_state(config: AppConfig, clock: Clock) -> RedisState | None:
    """The heartbeat, state and event stream in Redis, when redis.enabled."""
    if not config.redis.enabled:
        return None
    from arbitrage.store.redis_state import RedisState

    return RedisState.from_config(config.redis, config.instance, clock)


def _risk_budget(config: AppConfig, clock: Clock) -> RiskBudget | None:
    """A fleet worker's share of the one risk budget in Redis, when fleet.enabled."""
    if not config.fleet.enabled:
        return None
    from arbitrage.store.risk_budget import Limits, RiskBudget

    fleet = config.fleet
    return RiskBudget(
        config.redis.url, fleet.key_prefix, config.instance, fleet.lease_s, Limits.of(config), clock,
        socket_timeout_s=fleet.socket_timeout_s,
    )  # fmt: skip


def _started_recorder(config: AppConfig, clock: Clock, make_venues: VenueFactory) -> Recorder | None:
    """The market recorder, its writer running before the first book comes, when record.enabled."""
    if not config.record.enabled:
        return None
    if make_venues is not build_venues:
        # A replay's venues replay a recording: recording them again would copy it.
        raise ConfigError("record.enabled: expected false for a run on venues of its own (a replay)")
    recorder = build_recorder(config, clock)
    recorder.start()
    return recorder


def _dry_run(config: AppConfig, bot: Bot) -> DryRunHook | None:
    """Live mode's dry-run cycles: the first ticks read books and balances and send nothing."""
    if config.mode.current != "live":
        return None
    return DryRunHook(
        DryRunGate(config.live_guards.dry_run_cycles),
        bot.state,
        config.live_guards.dry_run_cycles,
        len(config.symbols) * len(config.venues),
        lambda: _balances_readable(bot),
    )


def _console(
    config: AppConfig,
    env: Mapping[str, str],
    clock: Clock,
    bot: Bot,
    supervisor: Supervisor,
    events: EventLog,
    redis: RedisState | None,
) -> ConsoleHook:
    """What `arb watch`, /state and the chat commands show, made only when one of them can read it."""
    return ConsoleHook(
        config,
        clock,
        bot.state,
        snapshot=lambda: bot.loop.last_snapshot,
        watchdog=lambda: supervisor.last_report,
        describe_venues=lambda: {name: v.describe() for name, v in bot.venues.by_name.items()},
        events=events,
        stopping=lambda: bot.loop.stopping,
        save_remote=redis.save_console if redis is not None else None,
        remote_every_s=config.redis.heartbeat_interval_s,
        read=config.health_server.enabled or _commands_wanted(config, env),
    )


def _health_server(
    config: AppConfig,
    env: Mapping[str, str],
    bot: Bot,
    supervisor: Supervisor,
    started: float,
    metrics: BotMetrics,
    console: ConsoleHook,
    control: OperatorControl,
) -> HealthServer | None:
    """/health, /metrics, /state and the token-guarded controls, when health_server.enabled."""
    hs = config.health_server
    if not hs.enabled:
        return None
    return HealthServer(
        hs.host,
        hs.port,
        lambda: health_status(bot, supervisor, started),
        metrics,
        max_connections=hs.max_connections,
        request_timeout_s=hs.request_timeout_s,
        state=console.document,
        control=Control(
            {"/halt": control.halt, "/resume": control.resume, "/stop": control.stop},
            env.get(hs.control_token_env, "").strip(),
            hs.control_token_env,
        ),
    )


def _telegram_commands(
    config: AppConfig,
    env: Mapping[str, str],
    settings: RunSettings,
    bot: Bot,
    console: ConsoleHook,
    control: OperatorControl,
) -> TelegramCommands | None:
    """The chat commands, when Telegram is set up (token and chat id) and alerts.commands is on."""
    if not _commands_wanted(config, env):
        return None
    alerts = config.alerts
    token = env.get(alerts.telegram_token_env, "").strip()
    chat_id = env.get(alerts.telegram_chat_id_env, "").strip()
    answers = OperatorCommands(
        bot.state,
        console.document,
        control,
        ledger_url(config, settings.data_dir),
    )
    return TelegramCommands(
        token, chat_id, alerts.telegram_base_url, answers.answer, alerts.poll_timeout_s, alerts.timeout_s
    )


def _commands_wanted(config: AppConfig, env: Mapping[str, str]) -> bool:
    """Whether the run answers chat commands: Telegram set up (token and chat id), alerts.commands on."""
    alerts = config.alerts
    token = env.get(alerts.telegram_token_env, "").strip()
    chat_id = env.get(alerts.telegram_chat_id_env, "").strip()
    return bool(alerts.commands and token and chat_id)


def build_recorder(config: AppConfig, clock: Clock) -> Recorder:
    """The market recorder of a run (`record:`), with the venues' exchange ids in its files."""
    from arbitrage.recording.recorder import Recorder

    return Recorder(
        config.record,
        Path(config.record.dir),
        book_depth=config.loop.book_depth,
        mode=config.mode.current,
        venues={name: vc.exchange for name, vc in config.venues.items()},
        clock=clock,
    )


def _balances_readable(bot: Bot) -> bool:
    try:
        for name, venue in bot.venues.by_name.items():
            bot.state.balances[name] = venue.balances()
    except Exception as err:
        log.warning("balances unreadable during the dry run: %s", err)
        return False
    return True
