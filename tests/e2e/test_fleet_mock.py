"""Three `arb run` workers in mock mode on one PostgreSQL ledger and one Redis: tight shared limits
are never exceeded at any instant (sampled in Redis during the run, and checked afterwards from
the ledger at every order's timestamp, a SIGKILLed worker's open positions included), the
SIGKILLed worker's lease (its balances in flight) ends within `lease_s` while its positions keep
counting, it rebuilds them from the ledger when restarted, the survivors keep trading, and each
worker's ledger reads see only its own rows."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import redis

from arbitrage.store.ledger import open_ledger
from tests.e2e.fleet_harness import (
    BudgetSampler,
    Worker,
    kill_holding_a_position,
    ledger_rows,
    open_at,
    safety_logs,
    start_worker,
    stop_all,
    traded_since,
    worker_config,
)
from tests.e2e.test_ops_health_command import arb_health
from tests.e2e.test_report_command import arb_report
from tests.waiting import wait_until

MAX_POSITIONS = 3
MAX_EXPOSURE = 4_000_000.0
LEASE_S = 2.0
# Tight limits and fast turnover: positions close after a second, so slots free up and fill again.
LIMITS = {
    "safety": {"max_open_positions": MAX_POSITIONS, "max_exposure": MAX_EXPOSURE},
    "signal": {"max_notional": 1_500_000, "min_notional": 100_000},
    "exit": {"max_hold_s": 1.0},
    "mock": {"premium_mean_pct": 0.6},
}


def test_three_workers_share_one_budget_and_survive_a_sigkill(
    tmp_path: Path, pg_schema_url: Callable[[], str], fleet_redis: tuple[redis.Redis, str]
) -> None:
    client, prefix = fleet_redis
    url = pg_schema_url()
    assignments = {"w1": ["BTC"], "w2": ["ETH"], "w3": ["BTC", "ETH"]}
    sampler = BudgetSampler(client, prefix)
    workers: list[Worker] = []
    killed_at = float("inf")
    try:
        for n, (name, symbols) in enumerate(assignments.items()):
            config = worker_config(name, symbols, url, prefix, **LIMITS)
            config["fleet"]["lease_s"] = LEASE_S
            args = ("--mock", "--interval", "0.02", "--seed", str(n + 3))
            workers.append(start_worker(tmp_path / name, config, *args))
        w3_config, w3_args = config, args
        sampler.start()
        w3 = workers[2]

        every = set(assignments)
        wait_until(lambda: traded_since(url, 0) == every, 120, "every worker to trade", every_s=0.2,
                   proc=w3.proc, details=w3.output)  # fmt: skip
        # The budget is the bottleneck at least once: more wanted than the fleet may hold.
        wait_until(lambda: "SHARED_BUDGET_EXHAUSTED" in safety_logs(workers), 120, "a refusal", every_s=0.2)

        # The fleet view: one `arb health` sees every worker and the shared budget.
        code, rows, out = arb_health(tmp_path / "health", worker_config("w1", ["BTC"], url, prefix, **LIMITS))
        assert code == 0, out
        assert all(rows[f"worker {name}"][0] == "OK" for name in assignments), out
        assert rows["fleet"][0] == "OK" and "3 worker(s) alive" in rows["fleet"][1], out

        # SIGKILL w3 while it holds a position: what it had in flight is freed within its lease.
        killed_at = kill_holding_a_position(w3, url, client, prefix, LEASE_S)

        # Restarted, w3 rebuilds its reservations from the ledger (its open positions) and trades.
        workers[2] = w3 = start_worker(tmp_path / "w3", w3_config, *w3_args)
        restarted_at = time.time()

        # The survivors keep trading after the kill, and so does w3 once back.
        wait_until(
            lambda: every <= traded_since(url, killed_at + 0.5), 120, "every worker to trade after the kill",
            every_s=0.2, proc=w3.proc, details=w3.output,
        )  # fmt: skip
        _, orders = ledger_rows(url)
        assert not [ts for i, ts in orders if i == "w3" and killed_at < ts < restarted_at]
    finally:
        sampler.stop()
        stop_all(workers)

    print(f"samples={sampler.samples} max_slots={sampler.max_slots} max_exposure={sampler.max_exposure:.0f}")
    assert sampler.samples > 50
    assert sampler.max_slots <= MAX_POSITIONS
    assert sampler.max_exposure <= MAX_EXPOSURE
    for w in workers:
        assert w.proc.returncode == 0, w.output()

    # From the ledger: at every order's timestamp, the fleet's open positions within the limits,
    # the dead worker's included (they stay open until it restarts, and keep counting meanwhile).
    positions, orders = ledger_rows(url)
    assert len(positions) >= 4
    assert {p.instance for p in positions} == set(assignments)
    peak = 0
    for _, ts in orders:
        now_open = open_at(positions, ts)
        peak = max(peak, len(now_open))
        assert len(now_open) <= MAX_POSITIONS, (ts, now_open)
        # An entry's reservation is its planned notional; its fill can come out a little dearer.
        assert float(sum(p.entry_cost for p in now_open)) <= MAX_EXPOSURE * 1.01, (ts, now_open)
    print(f"positions={len(positions)} orders={len(orders)} peak_open={peak}")
    assert peak >= 2, "the workers never held positions at once: the test proves nothing"

    # `arb report` over the fleet: PnL per worker, and one worker alone with --instance.
    fleet_report = arb_report(tmp_path, "--ledger", url)
    assert fleet_report.code == 0, fleet_report.stderr
    per_worker = fleet_report.stdout.split("PnL per worker")[1]
    assert all(f"│ {name} " in per_worker for name in assignments), fleet_report.stdout
    one = arb_report(tmp_path, "--ledger", url, "--instance", "w2")
    assert one.code == 0 and "worker w2 only" in one.stdout, one.stderr
    assert "│ w1 " not in one.stdout.split("PnL per worker")[1]

    # Each worker's reads (and so its recovery) see only its own rows.
    for name in assignments:
        ledger = open_ledger(url, instance=name)
        try:
            assert len(ledger.positions()) == sum(1 for p in positions if p.instance == name) > 0
            assert len(ledger.orders()) == sum(1 for i, _ in orders if i == name)
        finally:
            ledger.close()
