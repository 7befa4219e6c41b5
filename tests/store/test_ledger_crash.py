"""Crash safety: a writer killed with SIGKILL mid-loop leaves a consistent, usable ledger."""

from __future__ import annotations

import select
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import closing
from decimal import Decimal

import psycopg

from arbitrage.domain.orders import OrderState
from arbitrage.store.ledger import Ledger, open_ledger
from tests.conftest import PG_ADMIN_URL
from tests.store.ledger_factories import make_order
from tests.waiting import wait_until

# Each loop: two lone commits (a hedge sequence, then its event), then one transaction holding
# a whole entry: sequence, two orders, two fills, two order updates, a position, the day's PnL.
WRITER = r"""
import sys
from decimal import Decimal as D

from arbitrage.domain.orders import Order, OrderFilled, OrderSubmitted, apply
from arbitrage.domain.positions import PairPosition
from arbitrage.store.ledger import open_ledger

led = open_ledger(sys.argv[1], sys.argv[2])
qty, price, fee = D("0.0101"), D("91234567.5"), D("0.01")
while True:
    h = led.next_sequence("hedge")
    led.record_hedge_event(f"H{h}", "BTC", "upbit", "residual", qty, D("1.5"), "crash test", float(h))
    with led.transaction():
        seq = led.next_sequence("entry")
        group, ts = f"E{seq:07d}", float(seq)
        legs = [
            Order(f"{group}-B", "binance", "BTC/USDT", "buy", qty, price),
            Order(f"{group}-S", "upbit", "BTC/KRW", "sell", qty, price),
        ]
        led.insert_orders(legs, ts)
        for leg in legs:
            led.record_fill(leg.client_order_id, leg.venue, leg.symbol, leg.side, qty, price, fee, "KRW",
                            1.0, ts, trade_id="t1")
            led.update_order(apply(apply(leg, OrderSubmitted()), OrderFilled(qty, price, fee)), ts)
        led.save_position(PairPosition(group, "BTC", "binance", "upbit", "BTC/USDT", "BTC/KRW", qty, qty, qty,
                                       D(100), D(101), D("0.02"), 1.0, ts), ts)
        led.add_daily_pnl("2025-01-01", D("0.98"), D("0.02"), D(0), 1, ts)
    if seq % 20 == 0:
        print(seq, flush=True)
"""

QTY = Decimal("0.0101")


def _run_and_kill(url: str, synchronous: str, extra_wait_s: float) -> None:
    session = f"crash-writer-{uuid.uuid4().hex[:12]}"
    if url.startswith("postgresql://"):
        url += f"&application_name={session}"  # the writer's server session, to wait for below
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, synchronous],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    if ready:
        time.sleep(extra_wait_s)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert ready and alive, f"the writer did not keep writing until killed: {proc.stderr.read()[-2000:]}"
    assert proc.returncode == -signal.SIGKILL
    if url.startswith("postgresql://"):
        # A COMMIT the writer sent just before it died is still the server's to finish (and it
        # does: a transaction is whole or absent either way). Read the ledger once that session
        # is gone, or the commit could land between two of the reads below.
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            wait_until(lambda: admin.execute(query, (session,)).fetchone() == (0,), 30, f"{session} to end")


def _assert_consistent(led: Ledger, kills: int) -> int:
    sequences = dict(led.dump_rows("sequences"))
    seq, hedges = sequences["entry"], sequences["hedge"]
    orders = led.orders()
    assert len(orders) == 2 * seq
    assert all(o.state is OrderState.FILLED and o.filled_qty == QTY for o in orders)
    assert led.open_orders() == []
    fills = led.fills()
    assert len(fills) == 2 * seq
    assert sorted(f["client_order_id"] for f in fills) == sorted(o.client_order_id for o in orders)
    assert len(led.open_positions()) == seq == len(led.dump_rows("positions"))
    [day] = led.daily_rows()
    assert day["trades"] == seq and day["realized_pnl"] == Decimal("0.98") * seq
    # A hedge is two lone commits (sequence, then event): each kill so far may have fallen between.
    assert hedges - kills <= len(led.hedge_events()) <= hedges
    return seq


def test_sigkill_mid_write_leaves_a_consistent_usable_ledger(ledger_url: str) -> None:
    seen = 0
    for round_, (synchronous, wait_s) in enumerate([("FULL", 0.05), ("NORMAL", 0.15), ("FULL", 0.3)]):
        _run_and_kill(ledger_url, synchronous, wait_s)
        led = open_ledger(ledger_url)
        seq = _assert_consistent(led, kills=round_ + 1)
        assert seq > seen, f"round {round_}: no progress"
        seen = seq
        led.close()
    if ledger_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(ledger_url.removeprefix("sqlite:///"))) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    led = open_ledger(ledger_url)
    nxt = led.next_sequence("entry")
    assert nxt == seen + 1
    led.insert_orders([make_order(f"E{nxt:07d}-B")], 0.0)
    assert led.open_orders() == [make_order(f"E{nxt:07d}-B")]
    led.close()
