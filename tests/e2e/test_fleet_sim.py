"""Two paper workers against the loopback exchange simulator (real ccxt over a real socket), one
PostgreSQL ledger and one Redis budget of a single position: one worker's entry takes the fleet's
only slot, the other's are refused (SHARED_BUDGET_EXHAUSTED), the ledger never holds two open
positions at once, and paper mode never sends the simulator an order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import redis

from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from tests.e2e.fleet_harness import (
    ledger_rows,
    open_at,
    start_worker,
    worker_config,
)
from tests.e2e.sim_fixture import sim_overrides

SIM_SEED = 5  # the seeded market of tests/e2e/test_paper_live_sim.py: it offers entries early
SIM_RESET_EACH_TEST = True
LOOPS = 40


def test_two_paper_workers_share_one_position_slot(
    tmp_path: Path,
    pg_schema_url: Callable[[], str],
    fleet_redis: tuple[redis.Redis, str],
    sim_server: SimServer,
    sim: SimControl,
) -> None:
    _, fleet_prefix = fleet_redis
    url = pg_schema_url()
    extra = {**sim_overrides(sim_server.base_url), "safety": {"max_open_positions": 1}}
    workers = [
        start_worker(
            tmp_path / name,
            worker_config(name, ["BTC", "ETH"], url, fleet_prefix, **extra),
            "--mode",
            "paper",
            "--loops",
            str(LOOPS),
            "--interval",
            "0.1",
        )
        for name in ("w1", "w2")
    ]
    for w in workers:
        assert w.proc.wait(timeout=300) == 0, w.output()

    positions, orders = ledger_rows(url)
    assert positions, "no worker entered: the test proves nothing"
    for _, ts in orders:
        assert len(open_at(positions, ts)) <= 1, ts
    safety = "".join((w.workdir / "logs" / "safety.log").read_text(encoding="utf-8") for w in workers)
    assert "reason=SHARED_BUDGET_EXHAUSTED: open positions: 1 open or in flight, max 1" in safety
    assert sim.requests(op="create_order") == []  # paper never sends an order
    assert sim.requests(op="order_book"), "paper must read the simulator's books"
