"""The Supervisor tick hook: evaluation cadence, the watchdog's log lines, alerts and the exit code."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest

from arbitrage.clock import FakeClock
from arbitrage.config import AppConfig, parse_config
from arbitrage.ops.log_health import LogWriteHealth
from arbitrage.ops.metrics import BotMetrics
from arbitrage.ops.watchdog import Level
from arbitrage.runtime.loop import TickReport
from arbitrage.runtime.metrics_line import TickFigures
from arbitrage.runtime.state import BotState
from arbitrage.runtime.supervisor import EXIT_CRITICAL, Supervisor, SupervisorConfig

WATCHDOG_LOG = "arbitrage.watchdog"


class RecordingAlerter:
    """An Alerter that keeps what it is given (the real ones log or post it)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, key: str, text: str, level: str = "ERROR") -> None:
        self.sent.append((key, text, level))

    def close(self, timeout_s: float = 2.0) -> None:
        return None


def make(watchdog: dict[str, Any]) -> tuple[Supervisor, FakeClock, RecordingAlerter, BotMetrics]:
    venues = {"upbit": {"exchange": "mock", "quote": "KRW"}, "binance": {"exchange": "mock", "quote": "USDT"}}
    config: AppConfig = parse_config({"venues": venues, "watchdog": watchdog})
    clock = FakeClock()
    alerter = RecordingAlerter()
    metrics = BotMetrics()
    state = BotState(mode="mock", accounting_currency="KRW", utc_offset_h=9)
    sup = Supervisor(SupervisorConfig.of(config), clock, state, None, metrics, alerter, None)
    return sup, clock, alerter, metrics


def tick(n: int, loop_ms: float, live_errors: int = 0) -> TickReport:
    figures = TickFigures(
        pnl=0.0,
        trades=0,
        open_pos=0,
        exposure=0.0,
        realized_pnl=0.0,
        signals=0,
        exec_rate_pct=0.0,
        safety_rejections=0,
        sl_triggers=0,
        loop_ms=loop_ms,
        cpu_pct=0.0,
        mem_mb=0.0,
        live=False,
    )
    return TickReport(tick=n, started_at=float(n), loop_ms=loop_ms, figures=figures, live_errors=live_errors)


LATENCY = {"warn_loop_latency_ms": 10.0, "max_loop_latency_ms": 100.0}


def test_evaluates_the_worst_latency_since_the_last_evaluation() -> None:
    sup, clock, _, _ = make({**LATENCY, "evaluate_every_s": 1.0})
    assert sup.after_tick(tick(1, 1.0)) is None  # first tick: evaluated at once
    assert sup.last_values["loop_latency_ms"] == 1.0
    for n, ms in ((2, 150.0), (3, 2.0)):
        clock.advance(0.3)
        sup.after_tick(tick(n, ms))
    assert sup.last_values["loop_latency_ms"] == 1.0  # not yet a second since the last evaluation
    clock.advance(0.5)
    sup.after_tick(tick(4, 3.0))
    assert sup.last_values["loop_latency_ms"] == 150.0  # the spike between evaluations is not lost
    assert sup.last_report is not None and sup.last_report.level is Level.ERROR


def test_without_a_metrics_endpoint_the_watchdog_still_grades() -> None:
    """No health server serves /metrics: nothing is exported, the watchdog works as before."""
    venues = {"upbit": {"exchange": "mock", "quote": "KRW"}, "binance": {"exchange": "mock", "quote": "USDT"}}
    config: AppConfig = parse_config({"venues": venues, "watchdog": {**LATENCY, "evaluate_every_s": 0}})
    state = BotState(mode="mock", accounting_currency="KRW", utc_offset_h=9)
    sup = Supervisor(SupervisorConfig.of(config), FakeClock(), state, None, None, RecordingAlerter(), None)
    assert sup.after_tick(tick(1, 150.0)) is None
    assert sup.last_report is not None and sup.last_report.level is Level.ERROR


def test_critical_after_n_error_evaluations_returns_exit_3_with_a_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sup, _clock, alerter, _ = make({**LATENCY, "evaluate_every_s": 0, "critical_after_errors": 3})
    with caplog.at_level(logging.DEBUG, logger=WATCHDOG_LOG):
        codes = [sup.after_tick(tick(n, 500.0)) for n in (1, 2, 3)]
    assert codes == [None, None, EXIT_CRITICAL]
    lines = [r.getMessage() for r in caplog.records if r.name == WATCHDOG_LOG]
    evaluations = [line for line in lines if line.startswith("evaluation ERROR")]
    assert [e.split("(")[1].split(")")[0] for e in evaluations] == [
        "consecutive errors 1/3",
        "consecutive errors 2/3",
        "consecutive errors 3/3",
    ]
    assert [line.split(":")[0] for line in lines if line.startswith("level ")] == [
        "level OK -> ERROR",
        "level ERROR -> CRITICAL",
    ]
    assert sup.stop_reason.startswith(
        "watchdog CRITICAL after 3 consecutive ERROR evaluations: loop_latency_ms=500.0"
    )
    assert [(k, lvl) for k, _, lvl in alerter.sent] == [
        ("watchdog:ERROR", "ERROR"),
        ("watchdog:CRITICAL", "CRITICAL"),
    ]


def test_warn_is_logged_but_not_alerted_and_ok_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    sup, _clock, alerter, _ = make({**LATENCY, "evaluate_every_s": 0, "warn_reset_cycles": 2})
    with caplog.at_level(logging.INFO, logger=WATCHDOG_LOG):
        for n, ms in enumerate((1.0, 20.0, 1.0, 1.0, 1.0), start=1):
            assert sup.after_tick(tick(n, ms)) is None
    messages = [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records if r.name == WATCHDOG_LOG]
    assert messages == [
        ("WARNING", "evaluation WARN at tick 2, level WARN"),
        ("WARNING", "level OK -> WARN"),
        ("INFO", "level WARN -> OK"),  # after warn_reset_cycles clean evaluations
    ]
    assert alerter.sent == []
    assert sup.stop_reason == ""


def test_live_errors_per_minute_count_towards_the_watchdog() -> None:
    sup, clock, _, metrics = make(
        {"evaluate_every_s": 0, "warn_live_errors_per_minute": 2, "max_live_errors_per_minute": 5}
    )
    sup.after_tick(tick(1, 1.0, live_errors=1))
    assert sup.last_report is not None and sup.last_report.per_metric["live_errors_per_minute"] is Level.OK
    clock.advance(1.0)
    sup.after_tick(tick(2, 1.0, live_errors=4))
    assert sup.last_report.per_metric["live_errors_per_minute"] is Level.ERROR
    clock.advance(61.0)
    sup.after_tick(tick(3, 1.0))
    assert sup.last_report.per_metric["live_errors_per_minute"] is Level.OK  # the window moved on
    assert b"arb_watchdog_level" in metrics.render()


def test_an_unwritable_audit_log_blocks_entries_at_once_and_ends_critical() -> None:
    venues = {"upbit": {"exchange": "mock", "quote": "KRW"}, "binance": {"exchange": "mock", "quote": "USDT"}}
    config: AppConfig = parse_config({"venues": venues, "watchdog": {"critical_after_errors": 3}})
    clock = FakeClock()
    alerter = RecordingAlerter()
    state = BotState(mode="mock", accounting_currency="KRW", utc_offset_h=9)
    health = LogWriteHealth(stderr=io.StringIO())
    sup = Supervisor(
        SupervisorConfig.of(config), clock, state, None, BotMetrics(), alerter, None, log_health=health
    )
    assert sup.after_tick(tick(1, 1.0)) is None and state.entries_blocked is None
    health.failed("logs/execution.log", OSError(28, "No space left on device"))
    clock.advance(0.1)  # within the evaluation interval: entries stop anyway
    assert sup.after_tick(tick(2, 1.0)) is None
    assert state.entries_blocked == (
        "audit log cannot be written: logs/execution.log: [Errno 28] No space left on device"
    )
    assert alerter.sent[0][0] == "audit_log" and "new entries stopped" in alerter.sent[0][1]
    codes = []
    for n in range(3, 6):
        clock.advance(1.0)
        codes.append(sup.after_tick(tick(n, 1.0)))
    assert codes == [None, None, EXIT_CRITICAL]
    assert "audit_log=ERROR" in sup.stop_reason


def test_a_recovered_audit_log_lets_entries_go_on() -> None:
    venues = {"upbit": {"exchange": "mock", "quote": "KRW"}, "binance": {"exchange": "mock", "quote": "USDT"}}
    config: AppConfig = parse_config({"venues": venues})
    clock = FakeClock()
    alerter = RecordingAlerter()
    state = BotState(mode="mock", accounting_currency="KRW", utc_offset_h=9)
    health = LogWriteHealth(stderr=io.StringIO())
    sup = Supervisor(
        SupervisorConfig.of(config), clock, state, None, BotMetrics(), alerter, None, log_health=health
    )
    health.failed("logs/live_loop.log", OSError(28, "No space left on device"))
    sup.after_tick(tick(1, 1.0))
    assert state.entries_blocked is not None
    health.succeeded("logs/live_loop.log")
    clock.advance(1.0)
    sup.after_tick(tick(2, 1.0))
    assert state.entries_blocked is None
    assert sup.last_report is not None and sup.last_report.per_metric["audit_log"] is Level.OK
    assert [key for key, _, _ in alerter.sent if key.startswith("audit")] == ["audit_log", "audit_log_ok"]
