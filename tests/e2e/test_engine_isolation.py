"""A user engine that raises does not stop the loop: the tick goes on, the traceback is logged,
and each failure counts as a live error that the watchdog grades.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tests.e2e.raising_engine import ENTRY, FAILURE
from tests.e2e.runner import BUSY_LOOP, METRICS_RE, REPO, Run, merge, run_bot

CHAIN = ["signal", ENTRY, "safety", "execution", "stoploss", "position"]
# Grade every tick, so that what the watchdog saw does not depend on how fast the run went.
EVERY_TICK = {"watchdog": {"evaluate_every_s": 0}}


def run_with_raiser(workdir: Path, ticks: int, raise_every: int, extra: dict[str, Any] | None = None) -> Run:
    overrides = merge(
        merge(BUSY_LOOP, EVERY_TICK),
        {"engines": CHAIN, "plugins": {ENTRY: {"raise_every": raise_every}}, **(extra or {})},
    )
    return run_bot(
        workdir,
        "--mock",
        "--loops",
        str(ticks),
        "--interval",
        "0",
        overrides=overrides,
        env={"PYTHONPATH": str(REPO)},
    )


def state_counters(run: Run) -> dict[str, int]:
    state = json.loads((run.workdir / "data" / "state.json").read_text(encoding="utf-8"))
    counters: dict[str, int] = state["counters"]
    return counters


def test_engine_raising_every_tick_is_isolated(tmp_path: Path) -> None:
    run = run_with_raiser(tmp_path, 20, raise_every=1)
    assert run.code == 0, run.stderr
    lines = run.metrics_lines()
    assert len(lines) == 20
    assert all(METRICS_RE.search(line) for line in lines)
    # The engines after the raising one still ran: the run traded.
    assert int(lines[-1].split("trades=")[1].split()[0]) >= 1
    with sqlite3.connect(run.ledger_path) as db:
        filled = db.execute("select count(*) from orders where state = 'FILLED'").fetchone()[0]
    assert filled >= 2

    log = (run.log_dir / "live_loop.log").read_text(encoding="utf-8")
    assert log.count(f"[arbitrage.{ENTRY}] engine {ENTRY} raised; tick goes on without it") == 20
    assert log.count("Traceback (most recent call last):") == 20
    assert f"RuntimeError: {FAILURE} at tick 1" in log
    assert f"RuntimeError: {FAILURE} at tick 20" in log
    assert 'raising_engine.py", line' in log  # the traceback reaches into the engine's own code

    assert state_counters(run)["live_errors"] == 20
    assert state_counters(run)["ticks"] == 20


def test_engine_raising_every_other_tick_logs_its_calm_ticks_too(tmp_path: Path) -> None:
    run = run_with_raiser(tmp_path, 20, raise_every=2)
    assert run.code == 0, run.stderr
    assert len(run.metrics_lines()) == 20
    log = (run.log_dir / "live_loop.log").read_text(encoding="utf-8")
    assert log.count("Traceback (most recent call last):") == 10
    assert f"{FAILURE} at tick 2\n" in log and f"{FAILURE} at tick 1\n" not in log
    # On the ticks it did not raise, its notes went to its own logger.
    assert log.count(f"[arbitrage.{ENTRY}] calm at tick") == 10
    assert state_counters(run)["live_errors"] == 10


def test_live_errors_reach_the_watchdog_with_default_thresholds(tmp_path: Path) -> None:
    """20 errors within a minute: over warn (5/min), under max (30/min): WARN, never CRITICAL."""
    run = run_with_raiser(tmp_path, 20, raise_every=1)
    assert run.code == 0, run.stderr
    watchdog = (run.log_dir / "watchdog.log").read_text(encoding="utf-8")
    assert "level OK -> WARN: live_errors_per_minute=5.0 >= warn 5" in watchdog
    assert "live_errors_per_minute=20.0 >= warn 5" in watchdog
    assert "ERROR" not in watchdog and "CRITICAL" not in watchdog


def test_live_errors_over_the_max_shut_the_bot_down_with_exit_3(tmp_path: Path) -> None:
    limits = {
        "watchdog": {
            "warn_live_errors_per_minute": 2,
            "max_live_errors_per_minute": 3,
            "critical_after_errors": 3,
            "evaluate_every_s": 0,
        }
    }
    run = run_with_raiser(tmp_path, 20, raise_every=1, extra=limits)
    assert run.code == 3, run.stderr
    # Errors 3, 4 and 5 are three consecutive ERROR evaluations: CRITICAL after tick 5.
    assert len(run.metrics_lines()) == 5
    watchdog = (run.log_dir / "watchdog.log").read_text(encoding="utf-8")
    assert "live_errors_per_minute=5.0 >= max 3" in watchdog
    assert "-> CRITICAL" in watchdog
    assert state_counters(run)["live_errors"] == 5
