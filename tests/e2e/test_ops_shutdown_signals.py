"""Graceful shutdown of the real command on SIGTERM and SIGINT, with and without flatten
(see docs/ARCHITECTURE.md, Shutdown)."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.ops_harness import bot_process
from tests.e2e.runner import LOG_LINE_RE, Run
from tests.waiting import wait_until

STEPS = [
    "shutdown: 1/6 new entries stopped",
    "shutdown: 2/6 cancel open orders done",
    "shutdown: 3/6 flatten",
    "shutdown: 4/6 flush ledger done",
    "shutdown: 5/6 save state done",
    "shutdown: 6/6 final alert sent; done",
]
# Positions stay open (no take profit, no stop, no max hold) so that there is something to flatten.
KEEP_POSITIONS_OPEN = {
    "exit": {"min_spread_pct": 50.0, "max_hold_s": 86400},
    "stoploss": {"static_pct": 90.0},
    "logging": {"console": True},
}
# Order calls take time, so a signal is likely to land while legs are in flight.
SLOW_ORDERS = {"mock": {"faults": {"latency_rate": 0.5, "latency_ms": 20}}}


def _assert_six_steps_in_order(run: Run) -> str:
    live = (run.log_dir / "live_loop.log").read_text(encoding="utf-8")
    positions = [live.find(step) for step in STEPS]
    assert all(p >= 0 for p in positions), [s for s, p in zip(STEPS, positions, strict=True) if p < 0]
    assert positions == sorted(positions), "shutdown steps out of order"
    assert all(LOG_LINE_RE.match(line) for line in live.splitlines()), "a malformed log line"
    return live


def _ledger(run: Run) -> tuple[dict[str, int], dict[str, int]]:
    with sqlite3.connect(run.ledger_path) as db:
        orders = dict(db.execute("select state, count(*) from orders group by state").fetchall())
        positions = dict(db.execute("select state, count(*) from positions group by state").fetchall())
    return orders, positions


# SIGHUP is what a closed SSH session sends: it used to kill the bot with no cancel, state or alert.
@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"]
)
def test_a_signal_mid_run_shuts_down_cleanly_with_exit_0(tmp_path: Path, sig: signal.Signals) -> None:
    with bot_process(
        tmp_path, "--mock", "--loops", "100000", "--interval", "0.05", overrides=SLOW_ORDERS
    ) as bot:
        bot.wait_for(r"trades=[1-9]")  # mid-run: it has traded
        sent = time.monotonic()
        bot.send(sig)
        run = bot.finish(timeout=30)
        took = time.monotonic() - sent
    assert run.code == 0, run.stderr
    assert took < 5.0, f"exit took {took:.1f}s after {sig.name}"
    live = _assert_six_steps_in_order(run)
    assert f"{sig.name} received: stopping after this tick" in live
    assert f"shutdown: begin (signal {sig.name}, exit code 0)" in live
    assert f"ALERT [shutdown] arb-1 stopped: signal {sig.name} (exit 0)" in live
    orders, _ = _ledger(run)
    assert sum(orders.values()) >= 2
    assert not {"PENDING", "SUBMITTED"} & set(orders), orders
    state = json.loads((tmp_path / "data" / "state.json").read_text(encoding="utf-8"))
    assert state["reason"] == f"signal {sig.name}" and state["exit_code"] == 0
    assert state["open_orders"] == []
    assert run.stderr == ""


def test_flatten_on_shutdown_closes_every_open_position(tmp_path: Path) -> None:
    overrides = {**KEEP_POSITIONS_OPEN, "shutdown": {"flatten": True}}
    with bot_process(
        tmp_path, "--mock", "--loops", "100000", "--interval", "0.05", overrides=overrides
    ) as bot:
        bot.wait_for(r"open_pos=[2-9]")
        bot.send(signal.SIGTERM)
        run = bot.finish(timeout=30)
    assert run.code == 0, run.stderr
    live = _assert_six_steps_in_order(run)
    assert "shutdown: 3/6 flatten positions done" in live
    assert "shutdown: every position closed" in live
    _, positions = _ledger(run)
    assert positions.get("CLOSED", 0) >= 2
    assert positions.get("OPEN", 0) == 0, positions
    with sqlite3.connect(run.ledger_path) as db:
        reasons = {r[0] for r in db.execute("select exit_reason from positions")}
    assert "SHUTDOWN" in reasons
    state = json.loads((tmp_path / "data" / "state.json").read_text(encoding="utf-8"))
    assert state["open_positions"] == []


def test_without_flatten_positions_stay_open_and_are_saved(tmp_path: Path) -> None:
    with bot_process(
        tmp_path, "--mock", "--loops", "100000", "--interval", "0.05", overrides=KEEP_POSITIONS_OPEN
    ) as bot:
        bot.wait_for(r"open_pos=[1-9]")
        bot.send(signal.SIGTERM)
        run = bot.finish(timeout=30)
    assert run.code == 0, run.stderr
    live = _assert_six_steps_in_order(run)
    assert "shutdown: 3/6 flatten skipped (shutdown.flatten is off)" in live
    _, positions = _ledger(run)
    state = json.loads((tmp_path / "data" / "state.json").read_text(encoding="utf-8"))
    assert positions.get("OPEN", 0) == len(state["open_positions"]) >= 1


def test_a_second_sigint_during_shutdown_is_ignored(tmp_path: Path) -> None:
    # Every venue call takes 30 ms and there are positions to flatten: the shutdown lasts long
    # enough for the second SIGINT to land inside it.
    overrides = {
        **KEEP_POSITIONS_OPEN,
        "shutdown": {"flatten": True},
        "mock": {"faults": {"latency_rate": 1.0, "latency_ms": 30}},
    }
    # Held just after the shutdown began until the second SIGINT was seen: two signals sent
    # back to back can reach the process as one.
    pauses = tmp_path / "pauses"
    pauses.mkdir()
    env = {"ARB_PAUSE_AT": "shutdown.begun", "ARB_PAUSE_DIR": str(pauses)}
    live_log = tmp_path / "logs" / "live_loop.log"
    with bot_process(
        tmp_path, "--mock", "--loops", "100000", "--interval", "0.05", overrides=overrides, env=env
    ) as bot:
        bot.wait_for(r"open_pos=[1-9]", timeout=60)
        bot.send(signal.SIGINT)
        wait_until(
            (pauses / "shutdown.begun.reached").exists, 30, "shutdown begun", every_s=0.01, proc=bot.proc
        )
        bot.send(signal.SIGINT)
        wait_until(
            lambda: "during shutdown: ignored" in live_log.read_text(encoding="utf-8"),
            30,
            "the second SIGINT ignored",
            every_s=0.01,
            proc=bot.proc,
        )
        (pauses / "shutdown.begun.go").touch()
        run = bot.finish(timeout=60)
    assert run.code == 0, run.stderr
    live = _assert_six_steps_in_order(run)
    assert "SIGINT received: stopping after this tick" in live
    assert "SIGINT received during shutdown: ignored, the shutdown is finishing cleanly" in live
    assert live.count("shutdown: begin") == 1
    assert "Traceback" not in live + run.stderr and "KeyboardInterrupt" not in run.stderr
    orders, positions = _ledger(run)
    assert not {"PENDING", "SUBMITTED", "ACCEPTED", "PARTIAL"} & set(orders), orders
    assert positions.get("OPEN", 0) == 0, positions
    with sqlite3.connect(run.ledger_path) as db:
        filled = dict(db.execute("select client_order_id, filled_qty from orders").fetchall())
        fills = db.execute("select client_order_id, qty from fills").fetchall()
    # Every fill belongs to an order row, and each order's fills add up to its filled qty.
    per_order: dict[str, Decimal] = {}
    for cid, qty in fills:
        assert cid in filled, f"fill of unknown order {cid}"
        per_order[cid] = per_order.get(cid, Decimal(0)) + Decimal(qty)
    assert {c: Decimal(q) for c, q in filled.items() if Decimal(q) > 0} == per_order
    assert (
        json.loads((tmp_path / "data" / "state.json").read_text(encoding="utf-8"))["reason"]
        == "signal SIGINT"
    )


def test_stop_signals_after_the_first_are_ignored_up_to_the_exit(tmp_path: Path) -> None:
    # The bot is held at two points: just after the shutdown began, and after everything was
    # closed (where the handlers used to be restored to the defaults: SIGTERM then meant exit 143,
    # SIGINT a KeyboardInterrupt). Each signal is sent once the previous one was seen, since the
    # kernel merges a signal sent while the same one is still pending.
    pauses = tmp_path / "pauses"
    pauses.mkdir()
    env = {"ARB_PAUSE_AT": "shutdown.begun,session.closed", "ARB_PAUSE_DIR": str(pauses)}
    live_log = tmp_path / "logs" / "live_loop.log"

    def seen(text: str) -> int:
        return live_log.read_text(encoding="utf-8").count(text)

    with bot_process(tmp_path, "--mock", "--loops", "100000", "--interval", "0.05", env=env) as bot:
        bot.wait_for(r"trades=[1-9]")
        bot.send(signal.SIGTERM)

        def held_at(point: str, ignored: str, signals: tuple[signal.Signals, ...]) -> None:
            """Wait for the bot to pause at `point`, send each signal once the one before it is
            logged as ignored, then let the bot go on."""
            wait_until((pauses / f"{point}.reached").exists, 30, point, every_s=0.01, proc=bot.proc)
            for n, sig in enumerate(signals, 1):
                bot.send(sig)
                wait_until(
                    lambda n=n: seen(ignored) >= n,
                    30,
                    f"{n} signal(s) ignored at {point}",
                    every_s=0.01,
                    proc=bot.proc,
                )
            (pauses / f"{point}.go").touch()

        during = "received during shutdown: ignored, the shutdown is finishing cleanly"
        held_at("shutdown.begun", during, (signal.SIGTERM, signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
        after = "received after the shutdown: ignored, exiting with code 0"
        held_at("session.closed", after, (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGTERM))
        # And SIGTERM after SIGTERM while the interpreter exits, until the process is gone.
        sent = 0
        while bot.proc.poll() is None:
            bot.send(signal.SIGTERM)
            sent += 1
            time.sleep(0.001)
        run = bot.finish(timeout=30)
    assert run.code == 0, (run.code, run.stderr)
    live = _assert_six_steps_in_order(run)
    assert live.count("shutdown: begin") == 1
    assert "shutdown: begin (signal SIGTERM, exit code 0)" in live
    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        assert f"{name} {during}" in live and f"{name} {after}" in live
    assert "Traceback" not in live + run.stderr and "KeyboardInterrupt" not in run.stderr
    state = json.loads((tmp_path / "data" / "state.json").read_text(encoding="utf-8"))
    assert (state["reason"], state["exit_code"]) == ("signal SIGTERM", 0)
