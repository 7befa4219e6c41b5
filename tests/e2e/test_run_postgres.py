"""The real command with its ledger on the real PostgreSQL (127.0.0.1:5432, a throwaway schema)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from arbitrage.store.ledger import open_ledger
from tests.e2e.runner import BUSY_LOOP, run_bot


def test_mock_run_keeps_its_ledger_in_postgres_and_restarts_on_it(
    tmp_path: Path, pg_schema_url: Callable[[], str]
) -> None:
    url = pg_schema_url()
    overrides = {**BUSY_LOOP, "storage": {"url": url}}
    first = run_bot(tmp_path, "--mock", "--loops", "60", "--interval", "0", overrides=overrides)
    assert first.code == 0, first.stderr
    assert not (tmp_path / "data" / "ledger.sqlite3").exists()
    ledger = open_ledger(url)
    try:
        orders_after_first = len(ledger.orders())
        assert orders_after_first >= 2
        assert ledger.open_orders() == []
        assert ledger.unconcluded_groups() == []
        positions = ledger.positions()
        assert positions
        assert all(isinstance(p.entry_cost, Decimal) for p in positions)
    finally:
        ledger.close()
    # A second run continues the same ledger: sequences go on, nothing is reused.
    second = run_bot(
        tmp_path, "--mock", "--loops", "60", "--interval", "0", "--seed", "9", overrides=overrides
    )
    assert second.code == 0, second.stderr
    ledger = open_ledger(url)
    try:
        ids = [o.client_order_id for o in ledger.orders()]
        assert len(ids) == len(set(ids)) > orders_after_first
    finally:
        ledger.close()
