"""Fixtures shared across the suite: the real PostgreSQL at 127.0.0.1:5432 in throwaway schemas."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import psycopg

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


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
