"""Ledger fixtures: every ledger test runs on a SQLite file in tmp_path and on the real PostgreSQL
at 127.0.0.1:5432 in a throwaway schema that is dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from arbitrage.store.ledger import Ledger, open_ledger

if TYPE_CHECKING:
    import psycopg

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
BACKENDS = ("sqlite", "postgres")


def _pg_admin() -> psycopg.Connection[Any]:
    """An autocommit connection to the test database, or a failed test saying how to start it."""
    try:
        import psycopg  # here, so that a missing driver fails the test with advice
    except ModuleNotFoundError:
        pytest.fail("psycopg is not installed: pip install 'psycopg[binary]>=3.1' (the dev extra)")
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is unreachable ({exc}); start it with: {PG_START}")


@pytest.fixture
def pg_schema_url() -> Iterator[Callable[[], str]]:
    """Makes URLs of fresh throwaway schemas; drops every one of them afterwards."""
    admin = _pg_admin()
    made: list[str] = []

    def make() -> str:
        name = f"arb_test_{uuid.uuid4().hex[:12]}"
        made.append(name)
        return f"{PG_ADMIN_URL}?schema={name}"

    yield make
    for name in made:
        admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    admin.close()


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
