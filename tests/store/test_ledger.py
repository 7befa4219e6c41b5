"""The ledger contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from decimal import Decimal

import pytest

from arbitrage.domain.orders import (
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderState,
    OrderSubmitted,
    apply,
)
from arbitrage.domain.positions import PositionState
from arbitrage.errors import DuplicateOrder, LedgerError
from arbitrage.store.ledger import Ledger, open_ledger
from arbitrage.store.schema import SCHEMA_VERSION, TABLES
from tests.store.ledger_factories import make_opportunity, make_order, make_position

D = Decimal
TS = 1_700_000_000.25


@pytest.mark.parametrize(
    "qty, price",
    [
        (D("0.01234567"), D("91234000")),
        (D("1.50"), D("0.00000001")),  # trailing zero and tiny tick survive as written
        (D("123456789.123456789012345678901234567890"), D("1E-8")),  # beyond float and 28 digits
        (D("0E-8"), D("-0.5")),
    ],
)
def test_order_round_trips_exact_decimals(ledger: Ledger, qty: Decimal, price: Decimal) -> None:
    order = make_order(qty=qty, price=price, fee=D("0.000123"), reason="note")
    ledger.insert_orders([order], TS)
    back = ledger.order(order.client_order_id)
    assert back == order
    assert back is not None and str(back.qty) == str(qty) and str(back.price) == str(price)
    assert ledger.order("nope-B") is None


def test_order_state_updates_follow_the_lifecycle(ledger: Ledger) -> None:
    order = make_order()
    ledger.insert_orders([order], TS)
    steps: list[OrderEvent] = [
        OrderSubmitted(),
        OrderAccepted("venue-42"),
        OrderFilled(D("0.004"), D("91234000"), D("18.2468")),
        OrderFilled(D("0.00834567"), D("91233000"), D("38.06")),
    ]
    for i, event in enumerate(steps):
        order = apply(order, event)
        ledger.update_order(order, TS + i)
        assert ledger.order(order.client_order_id) == order
    assert order.state is OrderState.FILLED
    assert ledger.open_orders() == []


def test_update_of_an_order_never_inserted_fails(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="not in the ledger"):
        ledger.update_order(make_order("E0000009-B"), TS)


def test_open_orders_are_the_non_terminal_ones_oldest_first(ledger: Ledger) -> None:
    a_buy, a_sell = make_order("E0000001-B"), make_order("E0000001-S", venue="binance", side="sell")
    b_buy = make_order("E0000002-B")
    ledger.insert_orders([a_buy, a_sell], TS)
    ledger.insert_orders([b_buy], TS + 1)
    ledger.update_order(apply(a_sell, OrderCancelled("shutdown")), TS + 2)
    submitted = apply(b_buy, OrderSubmitted())
    ledger.update_order(submitted, TS + 3)
    assert ledger.open_orders() == [a_buy, submitted]
    assert [o.client_order_id for o in ledger.orders()] == ["E0000001-B", "E0000001-S", "E0000002-B"]
    assert ledger.order("E0000001-S") == apply(a_sell, OrderCancelled("shutdown"))


def test_duplicate_client_order_id_is_rejected_and_nothing_half_written(ledger: Ledger) -> None:
    first = make_order("E0000001-B")
    ledger.insert_orders([first], TS)
    with pytest.raises(DuplicateOrder, match="E0000001-B"):
        ledger.insert_orders([make_order("E0000002-B"), make_order("E0000001-B", qty=D(9))], TS)
    with pytest.raises(DuplicateOrder):
        ledger.insert_orders([make_order("E0000003-B"), make_order("E0000003-B")], TS)
    assert ledger.orders() == [first]
    ledger.insert_orders([make_order("E0000002-B")], TS)  # the connection is still usable
    assert len(ledger.orders()) == 2


def test_transaction_rolls_back_everything_on_exception(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError), ledger.transaction():
        assert ledger.next_sequence("entry") == 1
        ledger.insert_orders([make_order()], TS)
        ledger.record_fill(
            "E0000001-B", "upbit", "BTC/KRW", "buy", D("0.01"), D(91234000), D(45), "KRW", 1.0, TS
        )
        ledger.save_position(make_position(), TS)
        ledger.add_daily_pnl("2025-01-01", D(10), D(1), D(0), 1, TS)
        ledger.record_hedge_event("E0000001", "BTC", "upbit", "retry", D("0.001"), D(12), "retry", TS)
        ledger.record_opportunity("E0000001", 7, make_opportunity(), None)
        raise RuntimeError("the exchange call blew up")
    for table in ("orders", "fills", "positions", "daily_pnl", "hedge_events", "opportunities", "sequences"):
        assert ledger.dump_rows(table) == [], table
    assert ledger.next_sequence("entry") == 1


def test_transaction_commits_once_and_nested_use_joins_it(ledger: Ledger) -> None:
    with ledger.transaction():
        ledger.insert_orders([make_order("E0000001-B")], TS)  # opens its own (inner) transaction
        with ledger.transaction():
            ledger.update_order(apply(make_order("E0000001-B"), OrderSubmitted()), TS)
        ledger.save_position(make_position(), TS)
    assert ledger.order("E0000001-B") == apply(make_order("E0000001-B"), OrderSubmitted())
    assert ledger.position("E0000001") == make_position()


def test_a_failed_write_inside_a_transaction_dooms_it_even_if_caught(ledger: Ledger) -> None:
    ledger.insert_orders([make_order("E0000001-B")], TS)
    with pytest.raises(LedgerError, match="rolled back"), ledger.transaction():
        ledger.save_position(make_position(), TS)
        with pytest.raises(DuplicateOrder):
            ledger.insert_orders([make_order("E0000002-B"), make_order("E0000001-B")], TS)
    assert ledger.position("E0000001") is None
    assert [o.client_order_id for o in ledger.orders()] == ["E0000001-B"]


def test_fills_round_trip_and_a_replayed_trade_id_is_not_counted_twice(ledger: Ledger) -> None:
    args = ("E0000001-B", "binance", "BTC/USDT", "buy")
    ledger.record_fill(*args, D("0.004"), D("65000.01"), D("0.0000040"), "BTC", 1385.25, TS, trade_id="t1")
    ledger.record_fill(*args, D("0.004"), D("65000.01"), D("0.0000040"), "BTC", 1385.25, TS, trade_id="t1")
    ledger.record_fill(*args, D("0.001"), D("65000.02"), D("0.000001"), "BTC", 1385.25, TS + 1)
    ledger.record_fill(*args, D("0.001"), D("65000.02"), D("0.000001"), "BTC", 1385.25, TS + 1)
    ledger.record_fill("E0000001-S", "upbit", "BTC/KRW", "sell", D("0.006"), D(92e6), D(277), "KRW", 1.0, TS)
    mine = ledger.fills("E0000001-B")
    assert [(f["trade_id"], f["qty"], f["price"], f["fee"]) for f in mine] == [
        ("t1", D("0.004"), D("65000.01"), D("0.0000040")),
        (None, D("0.001"), D("65000.02"), D("0.000001")),
        (None, D("0.001"), D("65000.02"), D("0.000001")),
    ]
    assert str(mine[0]["fee"]) == "0.0000040"
    assert mine[0]["fx_rate"] == 1385.25 and mine[0]["fee_currency"] == "BTC" and mine[0]["ts"] == TS
    assert len(ledger.fills()) == 4
    assert [f["id"] for f in ledger.fills()] == sorted(f["id"] for f in ledger.fills())


def test_money_as_a_binary_float_is_refused(ledger: Ledger) -> None:
    with pytest.raises(TypeError, match="Decimal"):
        ledger.record_fill("E1-B", "upbit", "BTC/KRW", "buy", 0.1, D(1), D(0), "KRW", 1.0, TS)  # type: ignore[arg-type]
    assert ledger.fills() == []


def test_positions_upsert_and_the_open_ones_are_listed(ledger: Ledger) -> None:
    first, second = make_position("E0000001"), make_position("E0000002", opened_at=1_700_000_100.0)
    ledger.save_position(second, TS)
    ledger.save_position(first, TS)
    assert ledger.open_positions() == [first, second]
    half = first.close_part(D("0.004"), D("370000.1"), D("365000.7"), D("550.25"), -0.2, "take_profit", TS)
    ledger.save_position(half, TS + 1)
    assert ledger.position("E0000001") == half
    closed = half.close_part(D("0.006"), D("555000"), D("548000"), D("800"), -0.1, "take_profit", TS + 2)
    ledger.save_position(closed, TS + 2)
    assert closed.state is PositionState.CLOSED
    assert ledger.position("E0000001") == closed
    assert ledger.open_positions() == [second]
    assert ledger.position("E0000404") is None


def test_sequences_count_from_one_per_name_and_survive_reopen(ledger_url: str) -> None:
    led = open_ledger(ledger_url)
    assert [led.next_sequence("entry") for _ in range(3)] == [1, 2, 3]
    assert led.next_sequence("exit") == 1
    led.close()
    led = open_ledger(ledger_url)
    assert led.next_sequence("entry") == 4
    assert led.dump_rows("sequences") == [("entry", 4), ("exit", 1)]
    led.close()


def test_daily_pnl_accumulates_exactly(ledger: Ledger) -> None:
    assert ledger.daily_pnl("2025-01-01") == 0
    ledger.add_daily_pnl("2025-01-01", D("0.1234567890123456789012345678"), D("1.5"), D("0"), 1, TS)
    ledger.add_daily_pnl("2025-01-01", D("1000000.000000000000000000000001"), D("0.25"), D("3.3"), 2, TS + 1)
    ledger.add_daily_pnl("2025-01-02", D("-5"), D(0), D(0), 1, TS + 2)
    assert ledger.daily_pnl("2025-01-01") == D("1000000.1234567890123456789012355678")
    assert ledger.daily_pnl("2025-01-02") == D(-5)
    assert ledger.daily_rows() == [
        {
            "day": "2025-01-01",
            "realized_pnl": D("1000000.1234567890123456789012355678"),
            "fees": D("1.75"),
            "hedge_cost": D("3.3"),
            "trades": 3,
            "updated_at": TS + 1,
        },
        {
            "day": "2025-01-02",
            "realized_pnl": D(-5),
            "fees": D(0),
            "hedge_cost": D(0),
            "trades": 1,
            "updated_at": TS + 2,
        },
    ]


def test_opportunities_keep_prices_fx_and_the_verdict(ledger: Ledger) -> None:
    ledger.record_opportunity("E0000001", 7, make_opportunity(), None)
    ledger.record_opportunity("T8-0", 8, make_opportunity(net_spread_pct=9.5), "SPREAD_OUTLIER")
    rows = ledger.dump_rows("opportunities")
    # ... verdict, reason, ts, and the worker that recorded it
    assert [(r[0], r[1], r[-4], r[-3], r[-1]) for r in rows] == [
        ("E0000001", 7, "APPROVED", None, "arb-1"),
        ("T8-0", 8, "REJECTED", "SPREAD_OUTLIER", "arb-1"),
    ]
    assert rows[0][2:-4] == (
        "BTC", "binance", "upbit", "BTC/USDT", "BTC/KRW", 0.01, 65000.5, 92500000.0, 65000.25, 92510000.0,
        1385.2, 1.0, 2.75, 2.5, 0.1, 0.15, 12.5,
    )  # fmt: skip
    with pytest.raises(LedgerError):
        ledger.record_opportunity("E0000001", 9, make_opportunity(), None)


def test_hedge_events_are_listed_in_order_and_kinds_are_checked(ledger: Ledger) -> None:
    ledger.record_hedge_event(
        "E0000001", "BTC", "upbit", "retry", D("0.001"), D("12.5"), "missing sell qty", TS
    )
    ledger.record_hedge_event(
        "E0000001", "BTC", "binance", "unwind", D("0.001"), D("20.125"), "sold back", TS + 1
    )
    with pytest.raises(ValueError, match="kind"):
        ledger.record_hedge_event("E0000001", "BTC", "binance", "oops", D(0), D(0), "", TS)
    events = ledger.hedge_events()
    assert [(e["kind"], e["venue"], e["qty"], e["cost"], e["ts"]) for e in events] == [
        ("retry", "upbit", D("0.001"), D("12.5"), TS),
        ("unwind", "binance", D("0.001"), D("20.125"), TS + 1),
    ]


def test_schema_version_is_recorded_and_reopening_is_idempotent(ledger_url: str) -> None:
    led = open_ledger(ledger_url)
    assert led.schema_version() == SCHEMA_VERSION
    led.insert_orders([make_order()], TS)
    led.close()
    for _ in range(2):
        led = open_ledger(ledger_url)
        assert led.dump_rows("meta") == [("schema_version", str(SCHEMA_VERSION))]
        assert led.orders() == [make_order()]
        led.close()


def test_dump_rows_knows_only_ledger_tables(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="unknown ledger table"):
        ledger.dump_rows("orders; DROP TABLE orders")


def test_orders_carry_position_and_fee_currency(ledger: Ledger) -> None:
    order = make_order(position_id="E0000001", purpose="exit")
    ledger.insert_orders([order], TS)
    ledger.update_order(replace(order, position_id="E0000002"), TS + 1)
    row = dict(zip(TABLES["orders"].columns, ledger.dump_rows("orders")[0], strict=True))
    assert row["fee_currency"] == "KRW"  # the quote of BTC/KRW
    assert (row["purpose"], row["position_id"], row["created_at"], row["updated_at"]) == (
        "exit", "E0000002", TS, TS + 1
    )  # fmt: skip


def _commit_waits_for_disk(ledger: Ledger) -> bool:
    """The backend's own durability setting in force now (SQLite FULL = 2; PostgreSQL on)."""
    query = "PRAGMA synchronous" if ledger.dialect.name == "sqlite" else "SHOW synchronous_commit"  # type: ignore[attr-defined]
    setting = ledger._rows(query)  # type: ignore[attr-defined]
    return str(setting[0][0]) in ("2", "on")


def test_a_non_durable_transaction_commits_without_waiting_for_the_disk(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)  # storage.synchronous FULL, the default
    try:
        assert _commit_waits_for_disk(ledger)
        with ledger.transaction(durable=False):
            assert not _commit_waits_for_disk(ledger)
            ledger.save_position(make_position(), TS)
            with ledger.transaction():  # an inner use joins: the outermost decides
                assert not _commit_waits_for_disk(ledger)
                ledger.add_daily_pnl("2025-01-01", D(10), D(1), D(0), 1, TS)
        assert _commit_waits_for_disk(ledger)
        with ledger.transaction(), ledger.transaction(durable=False):
            assert _commit_waits_for_disk(ledger)
        with pytest.raises(RuntimeError), ledger.transaction(durable=False):
            raise RuntimeError("rolled back")
        assert _commit_waits_for_disk(ledger)
        # Orders must be on disk before they are sent: never inside a non-durable transaction.
        with pytest.raises(LedgerError, match="durable"), ledger.transaction(durable=False):
            ledger.insert_orders([make_order()], TS)
        assert ledger.orders() == []
    finally:
        ledger.close()
    reopened = open_ledger(ledger_url)
    try:
        assert reopened.position("E0000001") == make_position()
        assert reopened.daily_rows()[0]["realized_pnl"] == D(10)
    finally:
        reopened.close()


def _commits(ledger_url: str) -> list[str]:
    """The positions another connection sees: committed rows only (a plain reader, which neither
    migrates nor waits for the write lock the open batch holds)."""
    query = "SELECT position_id FROM positions ORDER BY position_id"
    if ledger_url.startswith("sqlite:///"):
        with sqlite3.connect(ledger_url.removeprefix("sqlite:///")) as db:
            return [r[0] for r in db.execute(query)]
    import psycopg

    from arbitrage.store.postgres_ledger import split_schema

    conninfo, schema = split_schema(ledger_url)
    with psycopg.connect(conninfo) as db:
        return [r[0] for r in db.execute(query.replace("positions", f'"{schema}".positions'))]


def test_a_batch_commits_its_transactions_together_and_each_fails_alone(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    try:
        with ledger.batch():
            with ledger.transaction(durable=False):
                ledger.save_position(make_position(position_id="E0000001"), TS)
                assert not _commit_waits_for_disk(ledger)
            assert _commits(ledger_url) == []  # held for the batch's one commit
            with pytest.raises(RuntimeError), ledger.transaction(durable=False):
                ledger.save_position(make_position(position_id="E0000002"), TS)
                raise RuntimeError("this pair's booking failed")
            with pytest.raises(LedgerError, match="rolled back"), ledger.transaction(durable=False):
                ledger.save_position(make_position(position_id="E0000003"), TS)
                with pytest.raises(LedgerError):
                    ledger.update_order(make_order("never-inserted"), TS)  # dooms this one only
            with ledger.transaction(durable=False):
                ledger.save_position(make_position(position_id="E0000004"), TS)
            assert [p.position_id for p in ledger.positions()] == ["E0000001", "E0000004"]
            # A durable transaction (orders before they are sent) first commits what is held.
            ledger.insert_orders([make_order("E0000005-B")], TS)
            assert _commits(ledger_url) == ["E0000001", "E0000004"]
            with ledger.transaction(durable=False):
                ledger.save_position(make_position(position_id="E0000006"), TS)
            assert _commits(ledger_url) == ["E0000001", "E0000004"]
        assert _commits(ledger_url) == ["E0000001", "E0000004", "E0000006"]
        assert _commit_waits_for_disk(ledger)
        assert [o.client_order_id for o in ledger.orders()] == ["E0000005-B"]
        # Orders are never written inside the batch's non-durable part.
        with ledger.batch(), pytest.raises(LedgerError, match="durable"), ledger.transaction(durable=False):
            ledger.insert_orders([make_order("E0000007-B")], TS)
    finally:
        ledger.close()
