"""Paper and live mode end to end: the real command, real ccxt, the exchange simulator on 127.0.0.1.

The simulator is the witness: in paper mode it must never see an order; in live mode every
filled order of the ledger must be there exactly once under its client order id, and after a
refused leg the coins on both venues together must be where they started (within the bound),
Binance's fees taken in the coin included.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from tests.e2e.runner import METRICS_RE, run_bot
from tests.e2e.sim_fixture import API_KEYS, LIVE_ENV, VENUES, sim_overrides, sim_totals, start_balances

SIM_SEED = 5  # the simulator fixtures of tests/conftest.py: this seed,
SIM_RESET_EACH_TEST = True  # and every test from the seeded market with fresh accounts

LOOPS = 30
MAX_UNHEDGED = {"BTC": Decimal("0.0001"), "ETH": Decimal("0.002")}  # config/live.yml's bounds


def ledger_orders(path: Path) -> list[tuple[str, str, str, str, str]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "select client_order_id, venue, state, filled_qty, symbol from orders order by rowid"
        ).fetchall()


@pytest.mark.slow
def test_paper_mode_trades_on_real_books_and_never_sends_an_order(
    tmp_path: Path, sim_server: SimServer, sim: SimControl
) -> None:
    run = run_bot(
        tmp_path, "--mode", "paper", "--loops", str(LOOPS), "--interval", "0.1",
        overrides=sim_overrides(sim_server.base_url), timeout=240,
    )  # fmt: skip
    assert run.code == 0, run.stderr[-3000:]
    lines = run.metrics_lines()
    assert len(lines) == LOOPS and all(METRICS_RE.search(line) for line in lines), lines[:1]
    orders = ledger_orders(run.ledger_path)
    assert sum(state == "FILLED" for _, _, state, _, _ in orders) >= 2, orders
    assert sim.orders() == []  # paper never sends an order
    assert sim.requests(op="create_order") == []
    assert sim.requests(op="order_book"), "paper must read the simulator's books"


@pytest.mark.slow
def test_live_mode_places_each_order_once_and_a_refused_leg_ends_hedged(
    tmp_path: Path, sim_server: SimServer, sim: SimControl
) -> None:

    (tmp_path / ".live_trading_ok").write_text("yes\n", encoding="utf-8")
    # The first three sells on Upbit are refused: the first entry's sell leg and both retries of
    # it, so the filled Binance leg has to be unwound.
    sim.add_fault("reject", venue="upbit", ops=["create_order"], count=3)
    run = run_bot(
        tmp_path, "--mode", "live", "--loops", str(LOOPS), "--interval", "0.1",
        overrides=sim_overrides(sim_server.base_url), env=LIVE_ENV, timeout=240,
    )  # fmt: skip
    assert run.code == 0, run.stderr[-3000:]
    lines = run.metrics_lines()
    assert len(lines) == LOOPS and all(line.endswith("live=✅") for line in lines)

    orders = ledger_orders(run.ledger_path)
    filled = [o for o in orders if o[2] == "FILLED"]
    assert len(filled) >= 4, orders
    assert not [o for o in orders if o[2] in ("PENDING", "SUBMITTED", "ACCEPTED", "PARTIAL")]
    placed = {venue: sim.orders(venue=venue, api_key=API_KEYS[venue]) for venue in VENUES}
    for venue, venue_orders in placed.items():
        counts = Counter(o["client_id"] for o in venue_orders)
        assert all(n == 1 for n in counts.values()), f"{venue}: a client order id placed twice: {counts}"
    for cid, venue, _, qty, _ in filled:
        match = [o for o in placed[venue] if o["client_id"] == cid]
        assert len(match) == 1 and match[0]["status"] == "FILLED", (cid, match)
        assert Decimal(match[0]["filled"]) == Decimal(qty)

    rejected = [o for o in orders if o[1] == "upbit" and o[2] == "REJECTED"]
    assert len(rejected) >= 1, orders
    with sqlite3.connect(run.ledger_path) as db:
        assert db.execute("select count(*) from hedge_events").fetchone()[0] >= 1

    # The simulator's own books of the two accounts: each coin's total over both venues is back
    # where it started, within the bound: the fees Binance took in the coin itself on buys were
    # made up for by buying that much more.
    start = start_balances()
    for asset, bound in MAX_UNHEDGED.items():
        zero = Decimal(0)
        now = sum((sim_totals(sim, v, API_KEYS[v]).get(asset, zero) for v in VENUES), zero)
        before = sum((start[v].get(asset, zero) for v in VENUES), zero)
        assert abs(now - before) <= bound, (asset, now, before)
