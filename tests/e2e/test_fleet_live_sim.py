"""Three live workers against the loopback exchange simulator (real ccxt over a real socket), each
trading its own coin of a three-coin market from one account per venue, on one PostgreSQL ledger and
one Redis budget that holds fewer positions than they want.

The simulator is the witness: at the instant of every order it took, the positions the ledger had
open stayed within the fleet's limits; every order it has is in the ledger, once, with the same
fill (across the workers); its balances moved exactly as the workers' fills say and nothing is left
unhedged (the crash test's audit, over the fleet). A worker killed with SIGKILL while it holds a
position loses its lease (its balances in flight) within `lease_s` while its position keeps
counting, the survivors go on placing orders, and the killed worker, restarted, recovers on the
shared ledger and trades again."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import redis

from arbitrage.config import load_config
from arbitrage.sim.control import SimControl
from arbitrage.sim.market import sim_assets
from arbitrage.sim.server import SimServer
from tests.e2e.crash_harness import audit
from tests.e2e.fleet_harness import (
    BudgetSampler,
    Worker,
    kill_holding_a_position,
    ledger_rows,
    open_at,
    order_reasons,
    safety_logs,
    start_worker,
    stop_all,
    traded_since,
    worker_config,
)
from tests.e2e.runner import merge
from tests.e2e.sim_fixture import API_KEYS, LIVE_ENV, VENUES, sim_overrides
from tests.waiting import wait_until

SIM_SEED = 5
SIM_COINS = 3  # BTC, ETH and SIMA: one for each worker
SIM_RESET_EACH_TEST = True
ASSIGNMENTS = {"w1": ["BTC"], "w2": ["ETH"], "w3": ["SIMA"]}
MAX_POSITIONS = 3  # three workers, each wanting a position every tick: the slots are the bottleneck
MAX_EXPOSURE = 13_000_000.0  # three entries of up to 4,000,000 fit
LEASE_S = 2.0
LIMITS = {
    "safety": {
        "max_open_positions": MAX_POSITIONS,
        "max_exposure": MAX_EXPOSURE,
        "max_position_notional": 5_000_000,  # the live guards want it within max_exposure
    },
    "signal": {"max_notional": 4_000_000, "min_notional": 100_000},
    # Positions close after a second (at whatever the reverse spread is), so slots free up and fill.
    "exit": {"max_hold_s": 1.0},
    # SIMA is a ~2 USDT coin: what live.yml allows of BTC and ETH (~10 USDT, about twice Binance's
    # 5 USDT minimum order, below which a residual cannot be unwound) is about 5 of it.
    "execution": {"max_unhedged_qty_by_asset": {"ETH": 0.002, "SIMA": 5}},
    "live_guards": {"dry_run_cycles": 0},
}


def _start(tmp_path: Path, name: str, config: dict[str, object]) -> Worker:
    workdir = tmp_path / name
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / ".live_trading_ok").write_text("yes\n", encoding="utf-8")
    return start_worker(workdir, config, "--mode", "live", "--interval", "0.1", env=LIVE_ENV)


def test_three_live_workers_share_one_budget_on_the_simulator_and_survive_a_sigkill(
    tmp_path: Path,
    pg_schema_url: Callable[[], str],
    fleet_redis: tuple[redis.Redis, str],
    sim_server: SimServer,
    sim: SimControl,
) -> None:
    client, prefix = fleet_redis
    url = pg_schema_url()
    configs = {
        name: worker_config(name, symbols, url, prefix, **merge(sim_overrides(sim_server.base_url), LIMITS))
        for name, symbols in ASSIGNMENTS.items()
    }
    for config in configs.values():
        config["fleet"]["lease_s"] = LEASE_S
    sampler = BudgetSampler(client, prefix)
    workers = [_start(tmp_path, name, config) for name, config in configs.items()]
    killed_at = float("inf")
    try:
        sampler.start()
        w3 = workers[2]

        wait_until(
            lambda: traded_since(url, 0) == set(ASSIGNMENTS), 120, "every worker to trade", every_s=0.2,
            proc=w3.proc, details=w3.output,
        )  # fmt: skip
        wait_until(lambda: "SHARED_BUDGET_EXHAUSTED" in safety_logs(workers), 120, "a refusal", every_s=0.2)

        # SIGKILL w3 while it holds a position: what it had in flight is freed within its lease.
        # Its slots count until it restarts: killed holding one, it leaves the survivors room.
        killed_at = kill_holding_a_position(w3, url, client, prefix, LEASE_S, most=1)

        # The survivors keep placing orders at the venues while w3 is dead.
        survivors = {"w1", "w2"}
        wait_until(lambda: survivors <= traded_since(url, killed_at + 0.5), 120, "the survivors to trade")
        restarted_at = time.time()
        _, orders = ledger_rows(url)
        assert not [ts for i, ts in orders if i == "w3" and killed_at < ts < restarted_at]

        # Restarted, w3 recovers what it had in flight on the shared ledger and trades again.
        workers[2] = w3 = _start(tmp_path, "w3", configs["w3"])
        wait_until(
            lambda: "w3" in traded_since(url, restarted_at), 120, "w3 to trade after its restart",
            every_s=0.2, proc=w3.proc, details=w3.output,
        )  # fmt: skip
    finally:
        sampler.stop()
        stop_all(workers)

    for w in workers:
        assert w.proc.returncode == 0, w.output()
    print(f"samples={sampler.samples} max_slots={sampler.max_slots} max_exposure={sampler.max_exposure:.0f}")
    assert sampler.max_slots <= MAX_POSITIONS
    assert sampler.max_exposure <= MAX_EXPOSURE

    # From the simulator and the ledger: at the instant of every order the venues took, the
    # fleet's open positions (the dead worker's included) within the shared limits.
    positions, _ = ledger_rows(url)
    placed = [o for venue in VENUES for o in sim.orders(venue=venue, api_key=API_KEYS[venue])]
    peak = 0
    for order in placed:
        now_open = open_at(positions, order["created_ms"] / 1000.0)
        peak = max(peak, len(now_open))
        assert len(now_open) <= MAX_POSITIONS, (order, now_open)
        # An entry's reservation is its planned notional; its fill can come out a little dearer.
        assert float(sum(p.entry_cost for p in now_open)) <= MAX_EXPOSURE * 1.01, (order, now_open)
    print(f"positions={len(positions)} sim_orders={len(placed)} peak_open={peak}")
    assert {p.instance for p in positions} == set(ASSIGNMENTS)
    assert peak == MAX_POSITIONS, "the workers never filled the fleet's slots: the test proves nothing"

    # The crash test's audit over the fleet: one account per venue, three workers' ledger rows.
    config = load_config(tmp_path / "w1" / "config.yml", "live")
    report = audit(sim, url, config, instances=list(ASSIGNMENTS), coins=sim_assets(SIM_COINS))
    assert report.problems == [], report.problems
    assert 0 < report.sim_orders <= report.ledger_orders
    # The shared balance budget kept every order within what the one account held.
    assert not [r for r in order_reasons(url) if "insufficient" in r.lower()]
