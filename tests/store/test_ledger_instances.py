"""Several workers on one ledger (SQLite and PostgreSQL): each writes under its instance and reads
back only its own orders, positions, hedge events and unconcluded groups, which is what its
recovery starts from; sequences and the day's PnL are the fleet's; a ledger from before instances
existed is adopted by the first bot that opens it."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

from arbitrage.domain.orders import OrderState
from arbitrage.store.ledger import open_ledger
from arbitrage.store.schema import MIGRATIONS, SCHEMA_VERSION
from tests.store.ledger_factories import make_order, make_position


def test_each_worker_reads_only_its_own_rows(ledger_url: str) -> None:
    w1, w2 = open_ledger(ledger_url, instance="w1"), open_ledger(ledger_url, instance="w2")
    try:
        w1.insert_orders([make_order("G1-B"), make_order("G1-S", side="sell")], 1.0)
        w2.insert_orders([make_order("G2-B", state=OrderState.SUBMITTED)], 2.0)
        w1.save_position(make_position("G1"), 3.0)
        w2.save_position(make_position("G2"), 3.0)
        w2.record_hedge_event("G2", "BTC", "upbit", "unwind", Decimal("0.001"), Decimal("-5"), "unwound", 4.0)
        w1.add_daily_pnl("2026-12-03", Decimal("10"), Decimal("1"), Decimal("0"), 1, 5.0)
        w2.add_daily_pnl("2026-12-03", Decimal("-4"), Decimal("1"), Decimal("0"), 1, 5.0)

        assert [o.client_order_id for o in w1.open_orders()] == ["G1-B", "G1-S"]
        assert [o.client_order_id for o in w2.open_orders()] == ["G2-B"]
        assert [o.client_order_id for o in w1.orders()] == ["G1-B", "G1-S"]
        assert w1.unconcluded_groups() == ["G1"] and w2.unconcluded_groups() == ["G2"]
        assert [p.position_id for p in w1.open_positions()] == ["G1"]
        assert [p.position_id for p in w2.positions()] == ["G2"]
        assert w1.hedge_events() == [] and [h["group_id"] for h in w2.hedge_events()] == ["G2"]
        # Shared: group numbers never collide, and the day's row is the whole fleet's.
        assert [w1.next_sequence("entry"), w2.next_sequence("entry"), w1.next_sequence("entry")] == [1, 2, 3]
        assert w1.daily_pnl("2026-12-03") == w2.daily_pnl("2026-12-03") == Decimal("6")
        # A position saved again keeps its owner.
        w1.save_position(make_position("G1", qty=Decimal("0.005")), 6.0)
        assert [p.qty for p in w1.open_positions()] == [Decimal("0.005")] and len(w2.positions()) == 1
    finally:
        w1.close()
        w2.close()


def test_a_ledger_from_before_instances_is_adopted_by_the_first_bot_to_open_it(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    before = MIGRATIONS.index(next(m for m in MIGRATIONS if any("ADD COLUMN instance" in s for s in m)))
    for step in MIGRATIONS[:before]:
        for statement in step:
            old.execute(
                statement.format(money="TEXT", real="REAL", bigint="INTEGER", serial_pk="INTEGER PRIMARY KEY")
            )
    old.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(before),))
    old.execute(
        "INSERT INTO orders (client_order_id, venue, symbol, side, qty, price, state, filled_qty, "
        "avg_fill_price, fee, purpose, opportunity_id, created_at, updated_at) VALUES ('G9-B', 'upbit', "
        "'BTC/KRW', 'buy', '1', '100', 'SUBMITTED', '0', '0', '0', 'entry', 'G9', 1, 1)"
    )
    old.commit()
    old.close()
    url = f"sqlite:///{path}"
    first = open_ledger(url, instance="solo")
    try:
        assert first.schema_version() == SCHEMA_VERSION
        assert [o.client_order_id for o in first.open_orders()] == ["G9-B"]
    finally:
        first.close()
    later = open_ledger(url, instance="other")
    try:
        assert later.open_orders() == [] and later.unconcluded_groups() == []
    finally:
        later.close()
