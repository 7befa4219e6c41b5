"""Tick hooks that watch the loop: the watchdog with the SysMonitor and heartbeat, and the
live dry-run gate. Each returns an exit code when the loop must stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from arbitrage.clock import Clock
from arbitrage.config import AppConfig, WatchdogConfig
from arbitrage.domain.rates import RateWindow
from arbitrage.ops.alerts import Alerter
from arbitrage.ops.live_guards import DryRunGate
from arbitrage.ops.log_health import LogWriteHealth, LogWriteStatus
from arbitrage.ops.metrics import BotMetrics
from arbitrage.ops.sysmonitor import SysMonitor, SysSample
from arbitrage.ops.watchdog import Level, Watchdog, WatchdogReport
from arbitrage.runtime.loop import TickReport
from arbitrage.runtime.state import BotState

if TYPE_CHECKING:  # redis-py is imported only by runs that enable Redis
    from arbitrage.store.redis_state import RedisState

log = logging.getLogger("arbitrage.watchdog")

EXIT_CRITICAL = 3  # see docs/ARCHITECTURE.md, Exit codes
EXIT_LIVE_REFUSED = 4
# Set in state.entries_blocked while the audit log cannot be written; cleared only if still ours.
AUDIT_LOG_BLOCK = "audit log cannot be written: "


@dataclass(frozen=True)
class SupervisorConfig:
    """What the Supervisor reads of the config: whose alerts, the watchdog, the heartbeat's pace."""

    instance: str
    watchdog: WatchdogConfig
    heartbeat_interval_s: float

    @classmethod
    def of(cls, config: AppConfig) -> SupervisorConfig:
        return cls(config.instance, config.watchdog, config.redis.heartbeat_interval_s)


class Supervisor:
    """After each tick: sample the process, beat the heart, grade the metrics, export them."""

    def __init__(
        self,
        config: SupervisorConfig,
        clock: Clock,
        state: BotState,
        sysmon: SysMonitor | None,
        metrics: BotMetrics | None,  # None: nothing serves /metrics, so nothing is exported
        alerter: Alerter,
        redis: RedisState | None,
        ws_lag: Callable[[], dict[str, float]] | None = None,
        snapshot: Callable[[], Mapping[str, Any]] | None = None,
        log_health: LogWriteHealth | None = None,
    ) -> None:
        self._cfg = config
        self._clock = clock
        self._state = state
        self.watchdog = Watchdog(config.watchdog)
        self._sysmon = sysmon
        self._metrics = metrics
        self._alerter = alerter
        self._redis = redis
        self._ws_lag = ws_lag
        self._snapshot = snapshot
        self._log_health = log_health
        self._log_status = LogWriteStatus()
        self._audit_log_failing = False
        self._log_failures_graded = 0  # audit log failures already counted in an evaluation
        self._rejections = RateWindow(60.0)
        self._errors = RateWindow(60.0)
        self._last_beat = float("-inf")
        self._last_eval = float("-inf")
        self._worst_latency_ms = 0.0
        self.last_sample: SysSample = SysSample()
        self.last_report: WatchdogReport | None = None
        self.last_values: dict[str, float | None] = {}
        self.stop_reason = ""  # why the watchdog ended the run, once it has

    def sys_sample(self) -> tuple[float, float]:
        """(cpu %, RSS MB) for the metrics line; sampled on the SysMonitor's own interval."""
        if self._sysmon is None:
            return 0.0, 0.0
        self.last_sample = self._sysmon.sample(self._clock.monotonic())
        return self.last_sample.cpu_pct, self.last_sample.rss_mb

    def after_tick(self, report: TickReport) -> int | None:
        mono = self._clock.monotonic()
        self._rejections.add(mono, sum(report.rejections.values()))
        self._errors.add(mono, report.live_errors)
        heartbeat_age = self._heartbeat(mono)
        if self._log_health is not None:
            self._guard_audit_log(self._log_health.status())
        self._worst_latency_ms = max(self._worst_latency_ms, report.loop_ms)
        if mono - self._last_eval < self._cfg.watchdog.evaluate_every_s:
            return None
        self._last_eval = mono
        worst_latency, self._worst_latency_ms = self._worst_latency_ms, 0.0
        lags = self._ws_lag() if self._ws_lag else {}
        values: dict[str, float | None] = {
            "loop_latency_ms": worst_latency,
            "safety_rejections_per_minute": self._rejections.per_minute(mono),
            "live_errors_per_minute": self._errors.per_minute(mono),
            "redis_heartbeat_age_ms": heartbeat_age,
            "ws_lag_ms": max(lags.values()) if lags else None,
        }
        self.last_values = values
        external = {f"sys.{k}": v for k, v in self.last_sample.levels.items()}
        if self._log_health is not None:
            # A record lost since the last evaluation counts even if the file took the next one.
            lost = self._log_status.failures > self._log_failures_graded
            external["audit_log"] = Level.ERROR if self._audit_log_failing or lost else Level.OK
            self._log_failures_graded = self._log_status.failures
        wd = self.watchdog.evaluate(values, external)
        self.last_report = wd
        self._report(wd, report)
        self._export(report, wd, values, lags)
        if wd.level is Level.CRITICAL:
            return EXIT_CRITICAL
        return None

    def _guard_audit_log(self, status: LogWriteStatus) -> None:
        """No audit log, no trading: entries stop at once (exits go on), and the watchdog grades
        every evaluation ERROR until the files take records again, so a log that stays
        unwritable ends the run with CRITICAL (exit 3) after critical_after_errors evaluations.
        """
        self._log_status = status
        state = self._state
        if not status.ok:
            if not self._audit_log_failing:
                self._audit_log_failing = True
                text = (
                    f"{self._cfg.instance}: cannot write the audit log ({status.describe()}); "
                    "new entries stopped, shutting down unless it recovers"
                )
                log.error(text)
                self._alerter.send("audit_log", text, "ERROR")
            if state.entries_blocked is None:  # another stop (shutdown, dry run) may hold it
                state.entries_blocked = AUDIT_LOG_BLOCK + status.describe()
        elif self._audit_log_failing:
            self._audit_log_failing = False
            if (state.entries_blocked or "").startswith(AUDIT_LOG_BLOCK):
                state.entries_blocked = None
            text = f"{self._cfg.instance}: the audit log can be written again; entries allowed"
            log.warning(text)
            self._alerter.send("audit_log_ok", text, "INFO")

    def _heartbeat(self, mono: float) -> float | None:
        if self._redis is None:
            return None
        if mono - self._last_beat >= self._cfg.heartbeat_interval_s:
            self._last_beat = mono
            if self._redis.heartbeat() and self._snapshot is not None:
                # The state snapshot rides on the heartbeat: dashboards and a restarted bot see
                # positions, open orders, daily PnL and the halt at most one interval old.
                self._redis.save_state(self._snapshot())
            age = self._redis.heartbeat_age_ms()
            self._state.redis_heartbeat_age_ms = age
            return age
        # Between beats the age grows with the clock; no round trip needed.
        last = self._state.redis_heartbeat_age_ms
        return None if last is None else last + (mono - self._last_beat) * 1000.0

    def _report(self, wd: WatchdogReport, tick: TickReport) -> None:
        # The evaluation's own grade (the worst metric, external CRITICAL counted as ERROR) is what
        # counts towards critical_after_errors; the level is where the state machine went with it.
        graded = min(max(wd.per_metric.values(), default=Level.OK), Level.ERROR)
        limit = self._cfg.watchdog.critical_after_errors
        breaches = "; ".join(wd.breaches)
        if graded is Level.ERROR:
            log.error(
                "evaluation ERROR (consecutive errors %d/%d) at tick %d, level %s: %s",
                wd.consecutive_errors,
                limit,
                tick.tick,
                wd.level.name,
                breaches,
            )
        elif graded is Level.WARN:
            log.warning("evaluation WARN at tick %d, level %s: %s", tick.tick, wd.level.name, breaches)
        else:
            log.debug("evaluation OK at tick %d, level %s", tick.tick, wd.level.name)
        if wd.level is Level.CRITICAL and wd.changed:
            self.stop_reason = f"watchdog CRITICAL after {limit} consecutive ERROR evaluations: {breaches}"
        if not wd.changed:
            return
        text = f"level {wd.previous.name} -> {wd.level.name}" + (f": {breaches}" if breaches else "")
        if wd.level is Level.CRITICAL:
            log.critical(text)
        elif wd.level is Level.ERROR:
            log.error(text)
        elif wd.level is Level.WARN:
            log.warning(text)
        else:
            log.info(text)
        if self._redis is not None:
            self._redis.publish(
                "watchdog", {"from": wd.previous.name, "to": wd.level.name, "breaches": wd.breaches}
            )
        if wd.level >= Level.ERROR:
            self._alerter.send(
                f"watchdog:{wd.level.name}", f"{self._cfg.instance}: watchdog {text}", wd.level.name
            )

    def _export(
        self, report: TickReport, wd: WatchdogReport, values: dict[str, float | None], lags: dict[str, float]
    ) -> None:
        if self._metrics is None:
            return
        f = report.figures
        c = self._state.counters
        self._metrics.update(
            {
                "pnl": f.pnl,
                "realized_pnl": f.realized_pnl,
                "open_positions": f.open_pos,
                "exposure": f.exposure,
                "loop_latency_ms": f.loop_ms,
                "tick_count": report.tick,
                "watchdog_level": int(wd.level),
                "redis_heartbeat_age_ms": values["redis_heartbeat_age_ms"],
                "cpu_pct": f.cpu_pct,
                "rss_mb": f.mem_mb,
                "trades_total": c.trades,
                "signals_total": c.signals,
                "sl_triggers_total": c.sl_triggers,
                "live_errors_total": c.live_errors,
            },
            rejections=dict(c.rejections),
            ws_lag_ms=dict(lags),
        )

    def detail(self) -> dict[str, Any]:
        wd = self.last_report
        return {
            "watchdog": {
                "level": (wd.level if wd else Level.OK).name,
                "per_metric": {k: v.name for k, v in (wd.per_metric if wd else {}).items()},
                "breaches": wd.breaches if wd else [],
                "values": self.last_values,
            },
            "audit_log": {
                "writable": self._log_status.ok,
                "failing": self._log_status.failing,
                "records_lost": self._log_status.failures,
            },
            "sys": {
                "available": self.last_sample.available,
                "cpu_pct": self.last_sample.cpu_pct,
                "rss_mb": self.last_sample.rss_mb,
                "open_fds": self.last_sample.open_fds,
                "threads": self.last_sample.threads,
            },
        }


class DryRunHook:
    """Live mode: the first ticks trade nothing; a problem in any of them refuses live trading (exit 4)."""

    def __init__(
        self,
        gate: DryRunGate,
        state: BotState,
        cycles: int,
        expected_books: int,
        read_balances: Callable[[], bool],
    ) -> None:
        self._gate = gate
        self._state = state
        self._cycles = cycles
        self._expected_books = expected_books
        self._read_balances = read_balances
        self.refused: list[str] = []
        self._blocking = not gate.passed
        if self._blocking:
            state.entries_blocked = f"live dry run ({cycles} cycles)"

    def after_tick(self, report: TickReport) -> int | None:
        if not self._blocking:
            return None
        problems = []
        if report.books < self._expected_books:
            problems.append(f"DRY_RUN: only {report.books}/{self._expected_books} books arrived")
        if report.stale_books:
            problems.append(f"DRY_RUN: {report.stale_books} book(s) older than safety.max_book_age_ms")
        if not self._read_balances():
            problems.append("DRY_RUN: balances could not be read")
        self._gate.observe(problems)
        if self._gate.failed_reasons:
            self.refused = self._gate.failed_reasons
            log.error("live dry run failed: %s", "; ".join(self.refused))
            return EXIT_LIVE_REFUSED
        log.info("live dry run cycle %d/%d clean", self._gate.clean_streak, self._cycles)
        if self._gate.passed:
            self._blocking = False
            self._state.entries_blocked = None
            log.warning("live dry run passed after %d clean cycles: live trading enabled", self._cycles)
        return None
