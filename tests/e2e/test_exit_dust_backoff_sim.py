"""Exits in live mode against the exchange simulator: dust that no venue trades, and a venue that
refuses the exit's buy leg for lack of funds (the real command, real ccxt, the simulator as witness).

Dust: Upbit fills an entry's sell leg in part (37%), on its 1e-8 step; without retries the Binance
buy is unwound on Binance's 0.0001 step, so the hedged position is finer than Binance can trade.
Its exit must close the part both venues trade and book the rest as residual dust, not send the
remainder every tick for ever (refused before sending) while it counts toward max_open_positions.

Backoff: with Upbit's KRW taken away, each exit sells on Binance, is refused on Upbit and unwound.
The attempts must come ever further apart (1, 2, 4 s ...), with one alert for the position, and
the exit must go through once the funds are back, with a message saying so.
"""

from __future__ import annotations

import re
import signal
import sqlite3
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from tests.e2e.ops_harness import bot_process
from tests.e2e.runner import merge, run_bot
from tests.e2e.sim_fixture import API_KEYS, LIVE_ENV, VENUES, sim_overrides, sim_totals, start_balances
from tests.waiting import wait_until

SIM_SEED = 5  # the simulator fixtures of tests/conftest.py: this seed,
SIM_RESET_EACH_TEST = True  # and every test from the seeded market with fresh accounts

D = Decimal
BINANCE_ETH_STEP = D("0.0001")  # the simulator's ETHUSDT step (arbitrage.sim.market)
ETH_BOUND = D("0.002")  # config/live.yml's execution.max_unhedged_qty_by_asset


def overrides(base_url: str, **sections: Any) -> dict[str, Any]:
    return merge(
        sim_overrides(base_url),
        {"symbols": ["ETH"], "safety": {"max_open_positions": 1}, **sections},
    )


def rows(path: Path, sql: str) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(sql)]


@pytest.mark.slow
def test_a_position_finer_than_binance_trades_exits_once_and_its_dust_is_booked(
    tmp_path: Path, sim_server: SimServer, sim: SimControl
) -> None:
    (tmp_path / ".live_trading_ok").write_text("yes\n", encoding="utf-8")
    # The first order on Upbit (the first entry's sell leg; the dry-run's test orders are not
    # faulted) fills 37%.
    sim.add_fault("partial_fill", venue="upbit", ops=["create_order"], count=1, fill_ratio=0.37)
    # A wide leg limit: the Binance buy of that entry must fill even when the books moved since
    # the opportunity (a loaded machine), or there is no position to test.
    execution = {"hedge_retries": 0, "max_slippage_pct": 1.0}
    config = overrides(sim_server.base_url, execution=execution, exit={"max_hold_s": 1})
    run = run_bot(
        tmp_path, "--mode", "live", "--loops", "40", "--interval", "0.1",
        overrides=config, env=LIVE_ENV, timeout=240,
    )  # fmt: skip
    assert run.code == 0, run.stderr[-3000:]

    positions = rows(run.ledger_path, "select * from positions order by opened_at")
    orders = rows(run.ledger_path, "select * from orders order by rowid")
    hedges = rows(run.ledger_path, "select * from hedge_events")
    assert not [o for o in orders if "refused before sending" in (o["reason"] or "")]
    finer = [p for p in positions if (D(p["closed_qty"]) + D(p["qty"])) % BINANCE_ETH_STEP != 0]
    assert len(finer) == 1, (positions, orders[:6])
    for position in finer:
        entry_qty = D(position["closed_qty"]) + D(position["qty"])
        # Closed: the tradable part through one exit, the rest as dust.
        assert (position["state"], position["exit_reason"], D(position["qty"])) == ("CLOSED", "DUST", 0)
        pid = position["position_id"]
        exit_legs = [o for o in orders if o["position_id"] == pid and o["purpose"] == "exit"]
        closable = (entry_qty / BINANCE_ETH_STEP).to_integral_value("ROUND_DOWN") * BINANCE_ETH_STEP
        # One exit, never retried, both legs on Binance's step.
        assert sorted((o["venue"], D(o["qty"]), o["state"]) for o in exit_legs) == [
            ("binance", closable, "FILLED"),
            ("upbit", closable, "FILLED"),
        ], exit_legs
        dust = entry_qty - closable
        booked = [h for h in hedges if h["detail"].startswith(f"dust of {pid}")]
        assert sorted((h["venue"], D(h["qty"])) for h in booked) == [("binance", dust), ("upbit", dust)]
    # The dust position no longer held safety.max_open_positions (1): entries went on after it.
    assert positions[-1]["opened_at"] > max(p["closed_at"] for p in finer), positions

    # The simulator's own balances: the coin is where it started over both venues, the dust
    # included (paired inventory, not lost), and the fees Binance took in ETH too: its buys were
    # grossed up by them.
    start = start_balances()
    now = sum((sim_totals(sim, v, API_KEYS[v]).get("ETH", D(0)) for v in VENUES), D(0))
    before = sum((start[v].get("ETH", D(0)) for v in VENUES), D(0))
    assert abs(now - before) <= ETH_BOUND, (now, before)


OPEN = "select position_id from positions where state = 'OPEN'"
EXIT_SELL = re.compile(r"^(?P<position>\w+?)X(?P<attempt>\d+)-S$")


def exit_attempts(sim: SimControl, position: str) -> list[float]:
    """When each exit attempt of `position` reached Binance (its sell leg), in seconds."""
    return sorted(
        o["created_ms"] / 1000.0
        for o in sim.orders(venue="binance", api_key=API_KEYS["binance"])
        if (m := EXIT_SELL.match(o["client_id"] or "")) and m["position"] == position
    )


def alerts(log_dir: Path, key: str) -> list[str]:
    text = (log_dir / "live_loop.log").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if f"ALERT [{key}" in line]


@pytest.mark.slow
def test_an_exit_upbit_refuses_is_backed_off_alerted_once_and_closes_when_funds_return(
    tmp_path: Path, sim_server: SimServer, sim: SimControl
) -> None:

    (tmp_path / ".live_trading_ok").write_text("yes\n", encoding="utf-8")
    config = overrides(sim_server.base_url, exit={"max_hold_s": 2})
    log_dir = tmp_path / "logs"
    with bot_process(tmp_path, "--mode", "live", "--interval", "0.2", overrides=config, env=LIVE_ENV) as bot:
        bot.wait_for(r"trades=1 ", 90)
        # The position's exit (max hold, 2 s) will need KRW on Upbit to buy back: take it away.
        sim.set_balance("upbit", API_KEYS["upbit"], "KRW", "1000")
        (position,) = [r["position_id"] for r in rows(tmp_path / "data" / "ledger.sqlite3", OPEN)]
        # Four attempts (t0, then waits of 1, 2 and 4 s): about 7 s of a refusing venue.
        wait_until(lambda: len(exit_attempts(sim, position)) >= 4, 60, "four exit attempts")
        refused = exit_attempts(sim, position)
        gaps = [b - a for a, b in pairwise(refused[:4])]
        print(f"exit attempts of {position} while refused, gaps in s: {[round(g, 2) for g in gaps]}")
        # Each wait doubles (1, 2, 4 s after a failure); the gap between two attempts adds the
        # attempt itself (about a second here: both legs, Upbit's retries, the unwind) and the
        # wait for the next tick.
        for gap, wait in zip(gaps, (1.0, 2.0, 4.0), strict=True):
            assert wait - 0.05 <= gap <= wait + 6.0, (gaps, refused)  # generous: a loaded machine
        (line,) = alerts(log_dir, "exit-failed:")
        assert f"exit-failed:{position}]" in line and "insufficient" in line, line
        sim.set_balance("upbit", API_KEYS["upbit"], "KRW", "100000000")
        wait_until(lambda: bool(alerts(log_dir, "exit-recovered:")), 60, "the exit to go through")
        done = bot.stdout().count("[METRICS]")  # two ticks past the close: nothing more is sent for it
        wait_until(lambda: bot.stdout().count("[METRICS]") >= done + 2, 30, "two ticks after the close")
        bot.send(signal.SIGINT)
        run = bot.finish(60)
    assert run.code == 0, run.stderr[-3000:]

    assert len(alerts(log_dir, f"exit-failed:{position}")) == 1
    (recovered,) = alerts(log_dir, f"exit-recovered:{position}")
    assert "failed attempt(s)" in recovered and "closed" in recovered, recovered
    closed = rows(run.ledger_path, f"select * from positions where position_id = '{position}'")
    assert closed[0]["state"] == "CLOSED" and D(closed[0]["qty"]) == 0, closed
    # Every attempt before the close was refused on Upbit and its Binance sell unwound.
    hedges = rows(run.ledger_path, "select * from hedge_events where kind = 'unwind'")
    unwound = {h["group_id"] for h in hedges if h["group_id"].startswith(f"{position}X")}
    assert len(unwound) == len(exit_attempts(sim, position)) - 1, (unwound, exit_attempts(sim, position))
