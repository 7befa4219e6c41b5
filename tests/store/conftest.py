"""Ledger fixtures: every ledger test runs on a SQLite file in tmp_path and on the real PostgreSQL
at 127.0.0.1:5432 in a throwaway schema that is dropped afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from arbitrage.store.ledger import Ledger, open_ledger

BACKENDS = ("sqlite", "postgres")


def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.sqlite3'}"


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path_factory)
    make: Callable[[], str] = request.getfixturevalue("pg_schema_url")
    return make()


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    led = open_ledger(ledger_url)
    yield led
    led.close()
