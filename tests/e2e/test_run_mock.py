"""The real command in mock mode: exit codes, metrics lines, log files and the ledger."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

from tests.e2e.runner import BUSY_LOOP, LOG_LINE_RE, METRICS_RE, merge, run_bot


def test_fifty_mock_ticks_trade_and_exit_zero(tmp_path: Path) -> None:
    run = run_bot(tmp_path, "--mode", "mock", "--loops", "50", "--interval", "0")
    assert run.code == 0, run.stderr
    lines = run.metrics_lines()
    assert len(lines) == 50
    assert all(METRICS_RE.search(line) for line in lines), lines[0]
    last_trades = int(lines[-1].split("trades=")[1].split()[0])
    assert last_trades >= 1
    log_lines = (run.log_dir / "live_loop.log").read_text(encoding="utf-8").splitlines()
    assert sum("[LIVE] [METRICS]" in line for line in log_lines) == 50
    assert all(LOG_LINE_RE.match(line) for line in log_lines if not line.startswith(("Traceback", " ")))
    with sqlite3.connect(run.ledger_path) as db:
        orders = db.execute("select state, count(*) from orders group by state").fetchall()
        positions = db.execute("select count(*) from positions").fetchone()[0]
        pending = db.execute("select count(*) from orders where state in ('PENDING','SUBMITTED')").fetchone()[
            0
        ]
    assert dict(orders).get("FILLED", 0) >= 2
    assert positions >= 1
    assert pending == 0


def test_once_runs_a_single_tick(tmp_path: Path) -> None:
    run = run_bot(tmp_path, "--mock", "--once")
    assert run.code == 0, run.stderr
    assert len(run.metrics_lines()) == 1


def test_metrics_line_shows_live_cross_outside_live_mode(tmp_path: Path) -> None:
    run = run_bot(tmp_path, "--mock", "--loops", "2", "--interval", "0")
    assert all(line.endswith("live=❌") for line in run.metrics_lines())


def _ledger_rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows with the clock-dependent columns (timestamps, book ages) masked."""
    out: dict[str, list[tuple[object, ...]]] = {}
    with sqlite3.connect(path) as db:
        for table in (
            "orders",
            "fills",
            "positions",
            "opportunities",
            "hedge_events",
            "daily_pnl",
            "sequences",
        ):
            cols = [r[1] for r in db.execute(f"pragma table_info({table})")]
            keep = [c for c in cols if not c.endswith(("_at", "ts", "age_ms")) and c not in ("day",)]
            out[table] = db.execute(f"select {', '.join(keep)} from {table} order by rowid").fetchall()
    return out


def test_same_seed_gives_the_same_ledger(tmp_path: Path) -> None:
    faults = merge(
        BUSY_LOOP,
        {"mock": {"faults": {"one_leg_failure_rate": 0.2, "partial_fill_rate": 0.1, "reject_rate": 0.05}}},
    )
    a = run_bot(
        tmp_path / "a", "--mock", "--loops", "120", "--interval", "0", "--seed", "7", overrides=faults
    )
    b = run_bot(
        tmp_path / "b", "--mock", "--loops", "120", "--interval", "0", "--seed", "7", overrides=faults
    )
    c = run_bot(
        tmp_path / "c", "--mock", "--loops", "120", "--interval", "0", "--seed", "8", overrides=faults
    )
    assert a.code == b.code == c.code == 0
    rows_a, rows_b, rows_c = (_ledger_rows(r.ledger_path) for r in (a, b, c))
    assert rows_a["orders"], "the run should have traded"
    assert rows_a == rows_b
    assert rows_a["orders"] != rows_c["orders"]


def test_one_leg_failures_end_hedged_or_unwound(tmp_path: Path) -> None:
    limits = {"BTC": Decimal("0.0001"), "ETH": Decimal("0.002")}
    overrides = {
        **BUSY_LOOP,
        # Rejections make some retries fail too, so that unwinds happen as well as retries.
        "mock": {"faults": {"one_leg_failure_rate": 0.3, "reject_rate": 0.2, "partial_fill_rate": 0.05}},
        "execution": {"max_unhedged_qty": 0.0001, "max_unhedged_qty_by_asset": {"ETH": 0.002}},
        "logging": {"console": False},
    }
    run = run_bot(tmp_path, "--mock", "--loops", "2000", "--interval", "0", overrides=overrides, timeout=300)
    assert run.code == 0, run.stderr
    with sqlite3.connect(run.ledger_path) as db:
        positions = db.execute(
            "select position_id, buy_qty, sell_qty, realized_pnl, asset from positions"
        ).fetchall()
        hedges = db.execute("select kind, cost from hedge_events").fetchall()
        daily = db.execute("select realized_pnl, hedge_cost from daily_pnl").fetchall()
        unwinds = db.execute("select count(*) from orders where purpose = 'unwind'").fetchone()[0]
        retries = db.execute("select count(*) from hedge_events where kind = 'retry'").fetchone()[0]
        open_orders = db.execute(
            "select count(*) from orders where state in ('PENDING','SUBMITTED','ACCEPTED','PARTIAL')"
        ).fetchone()[0]
    assert len(positions) > 20
    assert retries > 0 and unwinds > 0, (retries, unwinds)
    for pid, buy_qty, sell_qty, _, asset in positions:
        assert abs(Decimal(buy_qty) - Decimal(sell_qty)) <= limits[asset], pid
    realized_positions = sum((Decimal(r[3]) for r in positions), Decimal(0))
    hedge_costs = sum((Decimal(h[1]) for h in hedges), Decimal(0))
    daily_realized = sum((Decimal(d[0]) for d in daily), Decimal(0))
    assert daily_realized == realized_positions + hedge_costs
    assert sum((Decimal(d[1]) for d in daily), Decimal(0)) == hedge_costs
    assert open_orders == 0
    state = (tmp_path / "data" / "state.json").read_text(encoding="utf-8")
    import json

    unhedged = json.loads(state)["unhedged"]
    per_asset: dict[str, Decimal] = {}
    for key, qty in unhedged.items():
        asset = key.split(":")[1]
        per_asset[asset] = per_asset.get(asset, Decimal(0)) + Decimal(qty)
    assert all(abs(q) <= limits[a] for a, q in per_asset.items()), per_asset
