#!/usr/bin/env python3
"""How far the coins drift from the ledger in a long live run against the exchange simulator.

Starts the loopback simulator (arbitrage.sim) on a free 127.0.0.1 port, runs the real command
(`scripts/run_live.py --mode live`) against it for `--ticks` ticks with settings that make it trade
round trips back to back (every entry buys on Binance, every exit sells there the next tick), then
compares what the simulator's own accounts hold with what the ledger says:

- net coin change: each coin's total (free + locked) over both venues, now minus at the start.
  Every pair position is long on one venue and short on the other, so positions add nothing to it:
  it should equal the unhedged inventory the ledger knows of, and stay within
  execution.max_unhedged_qty(_by_asset);
- the ledger's unhedged inventory: per venue, what its orders moved (net of fees taken in the
  coin itself) less what its open positions hold there;
- the fees the simulator took in the coin itself (Binance charges a buy's fee in the coin bought).

`--repo` runs another checkout's command (for example the code before a fix) against the same
simulator. Prints one line per coin and exits 0, or 1 when a coin's net change exceeds its bound.

    .venv/bin/python scripts/sim_coin_drift.py --ticks 2000
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arbitrage.sim.control import SimControl  # noqa: E402
from arbitrage.sim.market import DEFAULT_ASSETS  # noqa: E402
from arbitrage.sim.server import SimServer, default_balances  # noqa: E402
from arbitrage.sim.urls import sim_options, sim_urls  # noqa: E402

VENUES = ("upbit", "binance")
API_KEYS = {"upbit": "drift-upbit-key", "binance": "drift-binance-key"}
ZERO = Decimal(0)


def overrides(base_url: str, ticks: int) -> dict[str, Any]:
    """Round trips back to back: small entries, an exit as soon as a position is open."""
    return {
        "venues": {
            v: {"urls": sim_urls(v, base_url), "options": sim_options(v), "timeout_ms": 3000} for v in VENUES
        },
        "signal": {"min_spread_pct": 0.1, "max_notional": 300000, "min_notional": 20000},
        "safety": {"daily_loss_limit": 19_000_000, "max_orders_per_minute": 100_000, "max_open_positions": 5},
        "exit": {"min_spread_pct": -5.0},  # take profit on the next tick, whatever the spread
        "watchdog": {
            "warn_loop_latency_ms": 5000,
            "max_loop_latency_ms": 20000,
            "warn_safety_rejections_per_minute": 100_000,
            "max_safety_rejections_per_minute": 1_000_000,
        },
        "sys_monitor": {"warn_cpu_pct": 1000, "max_cpu_pct": 1000},
        "live_guards": {"dry_run_cycles": 2},
        "logging": {"console": False},
    }


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def totals(sim: SimControl) -> dict[str, dict[str, Decimal]]:
    out: dict[str, dict[str, Decimal]] = {}
    for venue in VENUES:
        wallet = sim.balances(venue=venue, api_key=API_KEYS[venue]).get(venue, {}).get(API_KEYS[venue], {})
        out[venue] = {a: Decimal(x["free"]) + Decimal(x["locked"]) for a, x in wallet.items()}
    return out


def ledger_unhedged(path: Path) -> tuple[dict[tuple[str, str], Decimal], int, int]:
    """The ledger's inventory outside positions per (venue, asset), open positions, filled Binance buys."""
    held: dict[tuple[str, str], Decimal] = {}
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("pragma table_info(orders)")}
        fee_base = "fee_base" if "fee_base" in columns else "0"
        for venue, symbol, side, filled, coin_fee in db.execute(
            f"select venue, symbol, side, filled_qty, {fee_base} from orders where filled_qty != '0'"
        ):
            key = (venue, symbol.partition("/")[0])
            moved = Decimal(str(filled))
            moved = moved - Decimal(str(coin_fee)) if side == "buy" else -(moved + Decimal(str(coin_fee)))
            held[key] = held.get(key, ZERO) + moved
        open_positions = 0
        for asset, buy_venue, sell_venue, qty, closed, state, reason in db.execute(
            "select asset, buy_venue, sell_venue, qty, closed_qty, state, exit_reason from positions"
        ):
            entry = Decimal(qty) + Decimal(closed)
            kept = ZERO if reason == "INVENTORY" else Decimal(closed)
            held[(buy_venue, asset)] = held.get((buy_venue, asset), ZERO) - (entry - kept)
            held[(sell_venue, asset)] = held.get((sell_venue, asset), ZERO) + (entry - kept)
            open_positions += state == "OPEN"
        buys = db.execute(
            "select count(*) from orders where venue = 'binance' and side = 'buy' and filled_qty != '0'"
        ).fetchone()[0]
    return {k: v for k, v in held.items() if v}, open_positions, buys


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ticks", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose command runs")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the run's files here")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="coin-drift-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server = SimServer(seed=args.seed, tick_ms=100)
    server.start()
    try:
        sim = SimControl(server.base_url)
        start = default_balances(DEFAULT_ASSETS)
        base = yaml.safe_load((args.repo / "config" / "live.yml").read_text(encoding="utf-8"))
        config = merge(base, overrides(server.base_url, args.ticks))
        (workdir / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        (workdir / ".live_trading_ok").write_text("yes\n", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "LIVE_TRADING"))}
        env.update(
            {
                "LIVE_TRADING": "1",
                "UPBIT_API_KEY": API_KEYS["upbit"],
                "UPBIT_API_SECRET": "drift-upbit-secret",
                "BINANCE_API_KEY": API_KEYS["binance"],
                "BINANCE_API_SECRET": "drift-binance-secret",
            }
        )
        command = [
            sys.executable,
            str(args.repo / "scripts" / "run_live.py"),
            "--config",
            "config.yml",
            "--mode",
            "live",
            "--loops",
            str(args.ticks),
            "--interval",
            "0",
            "--log-dir",
            "logs",
            "--data-dir",
            "data",
        ]
        began = time.monotonic()
        proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=False)
        took = time.monotonic() - began
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
        now = totals(sim)
        coin_fees: dict[str, Decimal] = {}
        for venue in VENUES:
            for order in sim.orders(venue=venue, api_key=API_KEYS[venue]):
                asset = order["fee_asset"]
                if asset and asset not in ("USDT", "KRW"):
                    coin_fees[asset] = coin_fees.get(asset, ZERO) + Decimal(order["fee"])
        believed, open_positions, buys = ledger_unhedged(workdir / "data" / "ledger.sqlite3")
        limits = config["execution"]
        print(f"command: {' '.join(command)} (in {workdir}, exit {proc.returncode}, {took:.0f} s)")
        print(f"filled Binance buys: {buys}; open positions at the end: {open_positions}")
        over = False
        for asset in DEFAULT_ASSETS:
            bound = Decimal(
                str(limits.get("max_unhedged_qty_by_asset", {}).get(asset, limits["max_unhedged_qty"]))
            )
            change = sum((now[v].get(asset, ZERO) - start[v].get(asset, ZERO) for v in VENUES), ZERO)
            ledger = sum((q for (_, a), q in believed.items() if a == asset), ZERO)
            over = over or abs(change) > bound
            print(
                f"{asset}: net coin change over both venues {change:+} (bound {bound}); "
                f"ledger's unhedged {ledger:+}; venues minus ledger {change - ledger:+}; "
                f"fees taken in {asset} {coin_fees.get(asset, ZERO)}"
            )
        return 1 if over or proc.returncode != 0 else 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
