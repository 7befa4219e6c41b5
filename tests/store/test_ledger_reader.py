"""The report's read-only ledger reader on a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from arbitrage.domain.orders import OrderState
from arbitrage.errors import LedgerUnavailable
from arbitrage.store.ledger import Ledger, open_ledger
from arbitrage.store.ledger_reader import describe_ledger, read_ledger
from tests.store.ledger_factories import make_opportunity, make_order, make_position


def _fill_ledger(ledger: Ledger) -> None:
    ledger.record_opportunity("E0000001", 1, make_opportunity(ts=100.0), None)
    ledger.record_opportunity("E0000002", 2, make_opportunity(ts=200.0), "STALE_DATA")
    ledger.record_opportunity("E0000003", 3, make_opportunity(ts=300.0), "STALE_DATA")
    buy = make_order("E0000001-B", venue="binance", symbol="BTC/USDT", side="buy")
    sell = make_order("E0000001-S", side="sell")
    retry = make_order("E0000001-RB1", venue="binance", symbol="BTC/USDT", side="buy")
    ledger.insert_orders([buy, sell, retry], 100.0)
    fees = (Decimal("0.1"), Decimal("0.1"), Decimal("0.20000000000000000001"))  # beyond a float's digits
    for o, fee in zip((buy, sell, retry), fees, strict=True):
        filled = replace(o, state=OrderState.FILLED, filled_qty=o.qty, avg_fill_price=o.price, fee=fee)
        ledger.update_order(filled, 101.0)
    ledger.insert_orders([make_order("E0000002-S", side="sell")], 200.0)  # never sent
    closed = make_position("E0000001").close_part(
        Decimal("0.0100"),
        Decimal("925100.25"),
        Decimal("912000"),
        Decimal("1200.5"),
        0.1,
        "TAKE_PROFIT",
        160.0,
    )
    ledger.save_position(closed, 160.0)
    ledger.record_hedge_event(
        "E0000001", "BTC", "upbit", "unwind", Decimal("0.001"), Decimal("-12.34"), "x", 150.0
    )
    ledger.add_daily_pnl("2026-12-03", closed.realized_pnl, Decimal("1381.04"), Decimal(0), 1, 160.0)


def test_reads_every_table_exactly_on_both_backends(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    try:
        _fill_ledger(ledger)
        expected = ledger.positions()[0]
    finally:
        ledger.close()
    got = read_ledger(ledger_url)
    assert [(g.venue, g.side, g.state, g.orders, g.with_fills, g.filled_qty, g.fee) for g in got.orders] == [
        ("binance", "buy", "FILLED", 2, 2, Decimal("0.02469134"), Decimal("0.30000000000000000001")),
        ("upbit", "sell", "FILLED", 1, 1, Decimal("0.01234567"), Decimal("0.1")),
        ("upbit", "sell", "PENDING", 1, 0, Decimal("0"), Decimal("0")),
    ]
    assert got.all_orders == got.orders
    (p,) = got.positions
    assert (p.realized_pnl, p.entry_cost, p.state, p.closed_at) == (
        expected.realized_pnl, expected.entry_cost, "CLOSED", 160.0
    )  # fmt: skip
    assert all(type(v) is Decimal for v in (p.realized_pnl, p.entry_fees, p.exit_fees, p.qty))
    assert [(h.kind, h.cost, h.ts) for h in got.hedges] == [("unwind", Decimal("-12.34"), 150.0)]
    assert [(d.day, d.realized_pnl, d.trades) for d in got.days] == [("2026-12-03", expected.realized_pnl, 1)]
    counts = {(v.verdict, v.reason): v.count for v in got.verdicts}
    assert counts == {("APPROVED", None): 1, ("REJECTED", "STALE_DATA"): 2}
    # Orders and opportunities are counted over the window asked for: [start, end).
    windowed = read_ledger(ledger_url, 150.0, 300.0)
    assert {(v.verdict, v.reason): v.count for v in windowed.verdicts} == {("REJECTED", "STALE_DATA"): 1}
    assert [(g.venue, g.state, g.orders) for g in windowed.orders] == [("upbit", "PENDING", 1)]
    assert windowed.all_orders == got.orders


def test_a_missing_sqlite_ledger_is_one_sentence_and_nothing_is_created(tmp_path: Path) -> None:
    path = tmp_path / "data" / "ledger.sqlite3"
    with pytest.raises(LedgerUnavailable, match=r"^no ledger at .*ledger\.sqlite3$"):
        read_ledger(f"sqlite:///{path}")
    assert not path.parent.exists()


def test_a_database_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("create table t (x)")
    with pytest.raises(LedgerUnavailable, match="is not a ledger"):
        read_ledger(f"sqlite:///{path}")


def test_sqlite_reader_writes_nothing_and_reads_beside_an_open_write_transaction(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    ledger = open_ledger(url)
    try:
        _fill_ledger(ledger)
        # The bot in the middle of a write transaction: the reader sees the last commit, unblocked.
        with ledger.transaction():
            ledger.add_daily_pnl("2026-12-04", Decimal("5"), Decimal(0), Decimal(0), 1, 170.0)
            got = read_ledger(url)
            assert [d.day for d in got.days] == ["2026-12-03"]
        assert [d.day for d in read_ledger(url).days] == ["2026-12-03", "2026-12-04"]
    finally:
        ledger.close()
    db = tmp_path / "ledger.sqlite3"
    before = db.read_bytes()
    read_ledger(url)
    assert db.read_bytes() == before  # the reader wrote nothing
    # A WAL reader maps the shared-memory index (SQLite leaves -wal/-shm beside a read-only
    # reader); nothing else appears, and never the bot's lock file.
    assert {p.name for p in tmp_path.iterdir()} <= {db.name, f"{db.name}-wal", f"{db.name}-shm"}
    assert (tmp_path / f"{db.name}-wal").stat().st_size == 0
    assert not (tmp_path / "ledger.sqlite3.lock").exists()  # never the bot's instance lock


def test_postgres_schema_without_a_ledger_is_refused_and_not_created(
    pg_schema_url: Callable[[], str],
) -> None:
    url = pg_schema_url()
    with pytest.raises(
        LedgerUnavailable, match=r"no ledger in postgresql 127\.0\.0\.1:5432/test schema arb_test_"
    ):
        read_ledger(url)
    import psycopg

    schema = url.rsplit("=", 1)[1]
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test") as conn:
        found = conn.execute("select 1 from pg_namespace where nspname = %s", (schema,)).fetchall()
    assert found == []


def test_postgres_reader_runs_in_a_read_only_transaction(
    pg_schema_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_schema_url()
    open_ledger(url).close()
    import psycopg

    from arbitrage.store import ledger_reader

    seen: list[str] = []

    def probe(
        cur: Any, placeholder: str, start: float, end: float, has_rejections: bool, instance: str | None
    ) -> None:
        cur.execute("SHOW transaction_read_only")
        seen.append(cur.fetchall()[0][0])
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            cur.execute("CREATE TABLE sneaky (x int)")

    monkeypatch.setattr(ledger_reader, "_read", probe)
    read_ledger(url)
    assert seen == ["on"]


def test_describe_never_shows_a_password() -> None:
    text = describe_ledger("postgresql://bot:s3cret@db.example:6543/arb?schema=live")
    assert text == "postgresql db.example:6543/arb schema live"
    assert describe_ledger("sqlite:///data/ledger.sqlite3") == "sqlite data/ledger.sqlite3"
