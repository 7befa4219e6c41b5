"""Opening a ledger: URL forms, clear one-line errors, lazy psycopg, schema guard, backend parity."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage.domain.orders import OrderFilled, OrderSubmitted, apply
from arbitrage.errors import ConfigError, LedgerError, LedgerUnavailable
from arbitrage.store.ledger import Ledger, open_ledger
from arbitrage.store.schema import SCHEMA_VERSION, TABLES
from arbitrage.store.sqlite_ledger import SqliteLedger
from tests.conftest import PG_ADMIN_URL
from tests.store.ledger_factories import make_opportunity, make_order, make_position

D = Decimal


def _free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_postgres_is_a_one_line_error_without_the_password() -> None:
    port = _free_port()
    with pytest.raises(LedgerUnavailable) as info:
        open_ledger(f"postgresql://postgres:s3cret@127.0.0.1:{port}/test?schema=arb_x")
    message = str(info.value)
    assert f"127.0.0.1:{port}/test" in message and "unreachable" in message
    assert "\n" not in message and "s3cret" not in message


def test_unknown_scheme_is_refused_without_echoing_the_url() -> None:
    with pytest.raises(LedgerUnavailable, match="found mysql") as info:
        open_ledger("mysql://root:hunter2@127.0.0.1/db")
    assert "hunter2" not in str(info.value)


def test_synchronous_must_be_full_or_normal(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"storage\.synchronous"):
        open_ledger(f"sqlite:///{tmp_path / 'l.sqlite3'}", "OFF")


def test_schema_parameter_must_be_a_plain_identifier() -> None:
    with pytest.raises(LedgerUnavailable, match="plain identifier"):
        open_ledger(f"{PG_ADMIN_URL}?schema=x%3Bdrop")


def test_missing_psycopg_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "arbitrage.store.postgres_ledger", raising=False)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(
        LedgerUnavailable, match=r"psycopg is not installed: pip install 'arbitrage\[postgres\]'"
    ):
        open_ledger(PG_ADMIN_URL)


def test_a_sqlite_ledger_never_imports_psycopg(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from arbitrage.store.ledger import open_ledger\n"
        "led = open_ledger('sqlite:///' + sys.argv[1]); led.next_sequence('x'); led.close()\n"
        "print(sorted(m for m in sys.modules if m.startswith('psycopg')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "l.sqlite3")], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("synchronous, level", [("FULL", 2), ("NORMAL", 1)])
def test_sqlite_relative_path_gets_its_folders_wal_and_synchronous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synchronous: str, level: int
) -> None:
    monkeypatch.chdir(tmp_path)
    led = open_ledger("sqlite:///data/deep/ledger.sqlite3", synchronous)
    assert isinstance(led, SqliteLedger)
    assert led._conn.execute("PRAGMA synchronous").fetchone() == (level,)
    led.insert_orders([make_order()], 1.0)
    led.close()
    path = tmp_path / "data" / "deep" / "ledger.sqlite3"
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert raw.execute("SELECT client_order_id FROM orders").fetchall() == [("E0000001-B",)]


def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(LedgerUnavailable, match=r"junk\.sqlite3"):
        open_ledger(f"sqlite:///{path}")


def _set_version_behind_the_ledgers_back(url: str, version: int) -> None:
    statement = f"UPDATE meta SET value = '{version}' WHERE key = 'schema_version'"
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as raw:
            raw.execute(statement)
            raw.commit()
        return
    import psycopg

    base, schema = url.split("?schema=")
    with psycopg.connect(base, autocommit=True) as raw:
        raw.execute(f'SET search_path TO "{schema}"')
        raw.execute(statement)


def test_a_ledger_from_a_newer_bot_is_refused(ledger_url: str) -> None:
    open_ledger(ledger_url).close()
    _set_version_behind_the_ledgers_back(ledger_url, SCHEMA_VERSION + 1)
    with pytest.raises(LedgerUnavailable, match="newer than this bot"):
        open_ledger(ledger_url)


def _trade_day(led: Ledger) -> None:
    """One entry, as the execution path writes it: orders first, then fills, updates, position, PnL."""
    seq = led.next_sequence("entry")
    led.record_opportunity(f"E{seq:07d}", 1, make_opportunity(), None)
    led.record_opportunity(f"T{seq}-1", seq, make_opportunity(net_spread_pct=0.01), "MIN_LIQUIDITY")
    buy = make_order(f"E{seq:07d}-B", venue="binance", symbol="BTC/USDT", price=D("65000.01"))
    sell = make_order(f"E{seq:07d}-S", side="sell")
    with led.transaction():
        led.insert_orders([buy, sell], 10.0)
        for leg in (buy, sell):
            filled = apply(apply(leg, OrderSubmitted()), OrderFilled(leg.qty, leg.price, D("0.00012")))
            led.update_order(filled, 11.0)
            led.record_fill(leg.client_order_id, leg.venue, leg.symbol, leg.side, leg.qty, leg.price,
                            D("0.00012"), "BTC", 1385.5, 11.0, trade_id="1")  # fmt: skip
        led.save_position(make_position(f"E{seq:07d}"), 11.0)
    led.record_hedge_event(
        f"E{seq:07d}", "BTC", "upbit", "residual", D("0.00000001"), D("0.91"), "dust", 12.0
    )
    led.add_daily_pnl("2025-01-01", D("12345.678"), D("0.00024"), D("0.91"), 1, 12.0)


def test_both_backends_store_identical_rows(tmp_path: Path, pg_schema_url: Callable[[], str]) -> None:
    lite, pg = open_ledger(f"sqlite:///{tmp_path / 'l.sqlite3'}"), open_ledger(pg_schema_url())
    for led in (lite, pg):
        _trade_day(led)
        _trade_day(led)
    for table in TABLES:
        assert lite.dump_rows(table) == pg.dump_rows(table), table
    assert len(lite.dump_rows("orders")) == 4
    lite.close()
    pg.close()


def test_a_relaxed_begin_that_fails_restores_full_safety(tmp_path: Path) -> None:
    """A non-durable transaction whose BEGIN fails (the file busy past the timeout) must not leave
    the connection at synchronous=NORMAL: the next transaction may write orders."""
    path = tmp_path / "ledger.sqlite3"
    ledger = SqliteLedger(str(path), busy_timeout_ms=50)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the file
        with pytest.raises(LedgerError), ledger.transaction(durable=False):
            pass
        holder.execute("ROLLBACK")
        assert ledger._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        holder.close()
        ledger.close()
