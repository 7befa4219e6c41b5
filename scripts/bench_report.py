#!/usr/bin/env python3
"""The report's benchmark: synthesize a ledger of N orders through the real ledger API, then time
`arb report` on it as a subprocess (the median of a few runs, and once more with --html).

    python scripts/bench_report.py [--orders 100000] [--runs 5] [--ledger URL]

--ledger must name a ledger that does not exist yet (a new SQLite file, or a new PostgreSQL
schema: `postgresql://postgres@127.0.0.1:5432/test?schema=bench_report`, dropped by you after).

Each synthetic trade is what the bot writes for a round trip: an approved opportunity, two entry
and two exit orders (filled, with fees), the closed pair position and its daily PnL; one trade
in 25 also has an unwind hedge event, and safety rejections are recorded for the reasons table.
Trades are spread over 30 trading days.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

# Runnable from a checkout without installing: the package sits beside this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arbitrage.domain.money import booked
from arbitrage.domain.opportunity import Opportunity
from arbitrage.domain.orders import Order, OrderState
from arbitrage.domain.positions import PairPosition
from arbitrage.domain.trading_day import trading_day
from arbitrage.store.ledger import Ledger, open_ledger

REPO = Path(__file__).resolve().parent.parent
START = 1_780_000_000.0  # a fixed epoch, so that runs are comparable
DAYS = 30
UTC_OFFSET_H = 9.0
REASONS = ("STALE_DATA", "MAX_EXPOSURE", "SPREAD_OUTLIER", "MIN_LIQUIDITY", "ORDER_RATE")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=100_000, help="orders in the synthetic ledger (4 per trade)")
    p.add_argument("--runs", type=int, default=5, help="timed report runs (the median is the figure)")
    p.add_argument("--ledger", help="ledger URL to fill (default: a SQLite file in a temporary folder)")
    p.add_argument("--seed", type=int, default=13)
    return p.parse_args(argv)


def _filled(order: Order, price: Decimal, fee: Decimal) -> Order:
    return replace(order, state=OrderState.FILLED, filled_qty=order.qty, avg_fill_price=price, fee=fee)


def synthesize(ledger: Ledger, trades: int, seed: int) -> None:
    rng = random.Random(seed)
    span = DAYS * 86400.0
    days: dict[str, list[Decimal]] = {}
    with ledger.transaction():
        for i in range(trades):
            ts = START + span * i / trades
            asset = ("BTC", "ETH", "XRP", "SOL")[i % 4]
            usdt = Decimal(str(round(rng.uniform(60_000, 70_000), 2)))
            fx = Decimal("1385.2")
            qty = Decimal(str(round(rng.uniform(0.01, 0.1), 4)))
            spread = Decimal(str(round(rng.gauss(0.006, 0.004), 5)))
            krw = (usdt * fx * (1 + spread)).quantize(Decimal(1))
            group = f"B{i:07d}"
            opp = Opportunity(asset, "binance", "upbit", f"{asset}/USDT", f"{asset}/KRW", float(qty),
                              float(usdt), float(krw), float(usdt), float(krw), float(fx), 1.0,
                              float(spread) * 100 + 0.1, float(spread) * 100, 0.01, 0.15, ts)  # fmt: skip
            ledger.record_opportunity(group, i, opp, None)
            if i % 10 == 0:
                ledger.record_opportunity(f"J{i:07d}", i, opp, REASONS[i % len(REASONS)])
            buy_fee, sell_fee = qty * usdt / 1000, qty * krw / 2000
            legs = [
                Order(f"{group}-B", "binance", f"{asset}/USDT", "buy", qty, usdt, opportunity_id=group,
                      position_id=group, purpose="entry"),
                Order(f"{group}-S", "upbit", f"{asset}/KRW", "sell", qty, krw, opportunity_id=group,
                      position_id=group, purpose="entry"),
                Order(f"{group}X1-S", "binance", f"{asset}/USDT", "sell", qty, usdt,
                      opportunity_id=f"{group}X1", position_id=group, purpose="exit"),
                Order(f"{group}X1-B", "upbit", f"{asset}/KRW", "buy", qty, krw,
                      opportunity_id=f"{group}X1", position_id=group, purpose="exit"),
            ]  # fmt: skip
            ledger.insert_orders(legs, ts)
            fees = (buy_fee, sell_fee, buy_fee, sell_fee)
            for order, fee in zip(legs, fees, strict=True):
                ledger.update_order(_filled(order, order.price, fee), ts + 1)
            entry_fees = booked(buy_fee * fx + sell_fee)
            position = PairPosition(group, asset, "binance", "upbit", f"{asset}/USDT", f"{asset}/KRW",
                                    qty, qty, qty, booked(qty * usdt * fx), booked(qty * krw), entry_fees,
                                    float(spread) * 100, ts)  # fmt: skip
            drift = Decimal(str(round(rng.gauss(0, 0.004), 5)))
            closed = position.close_part(
                qty, booked(qty * usdt * fx * (1 + drift)), booked(qty * krw * (1 - spread / 2)), entry_fees,
                0.1, "TAKE_PROFIT", ts + rng.uniform(5, 900),
            )  # fmt: skip
            ledger.save_position(closed, ts + 1)
            # As the bot books them: the trade and its entry fees on the entry's day, the realized
            # PnL on the day the exit closed it, a hedge result on its own day.
            entry_day = days.setdefault(trading_day(ts, UTC_OFFSET_H), [Decimal(0)] * 4)
            entry_day[1] += entry_fees
            entry_day[3] += 1
            assert closed.closed_at is not None
            days.setdefault(trading_day(closed.closed_at, UTC_OFFSET_H), [Decimal(0)] * 4)[0] += (
                closed.realized_pnl
            )
            if i % 25 == 0:
                cost = booked(-qty * usdt * fx * Decimal("0.002"))
                ledger.record_hedge_event(group, asset, "binance", "unwind", qty / 10, cost, "bench", ts + 1)
                hedge_day = days.setdefault(trading_day(ts + 1, UTC_OFFSET_H), [Decimal(0)] * 4)
                hedge_day[0] += cost
                hedge_day[2] += cost
        for day, (realized, fees, hedge, n) in sorted(days.items()):
            ledger.add_daily_pnl(day, realized, fees, hedge, int(n), START + span)


def time_report(url: str, runs: int, *extra: str) -> list[float]:
    cmd = [sys.executable, "-m", "arbitrage", "report", "--ledger", url, *extra]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"arb report failed ({proc.returncode}): {proc.stderr.strip()}")
    return times


def main(argv: list[str]) -> int:
    args = parse(argv)
    trades = max(1, args.orders // 4)
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        url = args.ledger or f"sqlite:///{Path(tmp) / 'ledger.sqlite3'}"
        ledger = open_ledger(url, "NORMAL")
        try:
            t0 = time.perf_counter()
            synthesize(ledger, trades, args.seed)
            ledger.flush()
            built = time.perf_counter() - t0
            orders = len(ledger.dump_rows("orders")) if args.orders <= 200_000 else trades * 4
        finally:
            ledger.close()
        print(f"ledger: {orders:,} orders, {trades:,} positions over {DAYS} days, built in {built:.1f}s")
        plain = time_report(url, args.runs)
        page = Path(tmp) / "report.html"
        html = time_report(url, max(1, args.runs // 2), "--html", str(page))
        print(f"arb report:        median {statistics.median(plain):.2f}s  (runs: "
              f"{', '.join(f'{t:.2f}' for t in plain)})")  # fmt: skip
        print(f"arb report --html: median {statistics.median(html):.2f}s  (runs: "
              f"{', '.join(f'{t:.2f}' for t in html)}; page {page.stat().st_size // 1024} KiB)")  # fmt: skip
        print("target: <= 2 s on a ledger of 100,000 orders")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
