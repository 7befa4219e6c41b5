"""Binance takes a buy's fee from the coin bought: the real command in live mode against the
simulator, round trips back to back, and the simulator's own accounts as the witness.

Every entry buys on Binance (the simulated Upbit premium) and every exit sells there the next
tick. Each coin's total over both venues must end where the ledger says it is: pair positions are
long on one venue and short on the other, so the net change is exactly the unhedged inventory the
ledger knows of, and that stays within execution.max_unhedged_qty(_by_asset). Before buys were
grossed up by the fee, each Binance buy left the pair short by its fee while the ledger believed
it hedged.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from arbitrage.store.ledger import open_ledger
from tests.e2e.runner import merge, run_bot
from tests.e2e.sim_fixture import API_KEYS, LIVE_ENV, VENUES, sim_overrides, sim_totals, start_balances

SIM_SEED = 5  # the simulator fixtures of tests/conftest.py: this seed,
SIM_RESET_EACH_TEST = True  # and every test from the seeded market with fresh accounts
LOOPS = 30
ZERO = Decimal(0)
BOUNDS = {"BTC": Decimal("0.0001"), "ETH": Decimal("0.002")}  # config/live.yml's bounds
ROUND_TRIPS = {
    # Trades of about 1,000,000 KRW: one Binance buy's fee in ETH is about 0.0003 ETH, so a few
    # buys short by their fee would already be past the ETH bound.
    "signal": {"min_spread_pct": 0.1, "max_notional": 1_000_000, "min_notional": 20_000},
    "safety": {"daily_loss_limit": 19_000_000, "max_orders_per_minute": 100_000},
    "exit": {"min_spread_pct": -5.0},  # take profit on the next tick, whatever the spread
}


def ledger_unhedged(path: Path) -> dict[str, Decimal]:
    """Per coin, the inventory outside positions as the ledger has it: what every order moved
    (net of a fee taken in the coin) less what the positions hold."""
    ledger = open_ledger(f"sqlite:///{path}")
    try:
        held: dict[str, Decimal] = {}
        for order in ledger.orders():
            asset = order.symbol.partition("/")[0]
            held[asset] = held.get(asset, ZERO) + (order.net_qty if order.side == "buy" else -order.net_qty)
        for position in ledger.positions():
            # Long on the buy venue, short on the sell venue: the two cancel in the coin's total.
            assert position.buy_venue != position.sell_venue
        return held
    finally:
        ledger.close()


@pytest.mark.slow
def test_binance_buys_are_grossed_up_so_the_coins_match_the_ledger(
    tmp_path: Path, sim_server: SimServer, sim: SimControl
) -> None:
    (tmp_path / ".live_trading_ok").write_text("yes\n", encoding="utf-8")
    overrides = merge(sim_overrides(sim_server.base_url), ROUND_TRIPS)
    run = run_bot(
        tmp_path, "--mode", "live", "--loops", str(LOOPS), "--interval", "0",
        overrides=overrides, env=LIVE_ENV, timeout=400,
    )  # fmt: skip
    assert run.code == 0, run.stderr[-3000:]

    ledger = open_ledger(f"sqlite:///{run.ledger_path}")
    try:
        orders = ledger.orders()
    finally:
        ledger.close()
    buys = [o for o in orders if o.venue == "binance" and o.side == "buy" and o.filled_qty > 0]
    assert len(buys) >= 10, "the run should have bought on Binance many times"
    placed = {o["client_id"]: o for o in sim.orders(venue="binance", api_key=API_KEYS["binance"])}
    for buy in buys:
        # The ledger knows how much of each buy's fee was taken in the coin, as the venue said.
        venue_order = placed[buy.client_order_id]
        assert venue_order["fee_asset"] == buy.symbol.partition("/")[0]
        assert buy.fee_base == Decimal(venue_order["fee"]) > 0
    entries = {o.opportunity_id: o for o in orders if o.purpose == "entry" and o.side == "sell"}
    for buy in (b for b in buys if b.purpose == "entry"):
        sell = entries[buy.opportunity_id]
        # Grossed up: what arrived covers what the other leg sold.
        assert buy.net_qty >= sell.qty, (buy, sell)

    start = start_balances()
    believed = ledger_unhedged(run.ledger_path)
    # The bot's own residual book at shutdown (state.json) holds the same: no coin lost on the way.
    saved = json.loads((tmp_path / "data" / "state.json").read_text(encoding="utf-8"))["unhedged"]
    in_memory: dict[str, Decimal] = {}
    for key, qty in saved.items():
        in_memory[key.split(":")[1]] = in_memory.get(key.split(":")[1], ZERO) + Decimal(qty)
    for asset, bound in BOUNDS.items():
        now = sum((sim_totals(sim, v, API_KEYS[v]).get(asset, ZERO) for v in VENUES), ZERO)
        before = sum((start[v].get(asset, ZERO) for v in VENUES), ZERO)
        change = now - before
        assert change == believed.get(asset, ZERO) == in_memory.get(asset, ZERO), (
            asset,
            change,
            believed,
            in_memory,
        )
        assert abs(change) <= bound, (asset, change, bound)
