"""Fixtures shared across the suite: the real PostgreSQL at 127.0.0.1:5432 in throwaway schemas, the
loopback exchange simulator on a free 127.0.0.1 port, and a private redis-server to kill."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from tests.store.redis_server import PrivateRedisServer

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests (marked slow) first, the rest in their usual order after them.

    Parallel workers then start on the long runs and fill the end with short tests; a long test
    collected last would leave the other workers idle while it alone finishes the suite.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[PrivateRedisServer]:
    """A redis-server of the test's own (no persistence), killed afterwards: `kill()` it as a crash
    would, `start()` it again empty on the same port."""
    server = PrivateRedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


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


@pytest.fixture(scope="module")
def sim_server(request: pytest.FixtureRequest) -> Iterator[SimServer]:
    """A loopback exchange simulator shared by a test module; seeded by the module's SIM_SEED."""
    server = SimServer(seed=getattr(request.module, "SIM_SEED", 7), tick_ms=100)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sim(sim_server: SimServer, request: pytest.FixtureRequest) -> Iterator[SimControl]:
    """The simulator's control client; faults, frozen books and paused streams are undone after each test.

    A module with SIM_RESET_EACH_TEST = True also starts every test from the seeded market with
    fresh accounts.
    """
    control = SimControl(sim_server.base_url)
    if getattr(request.module, "SIM_RESET_EACH_TEST", False):
        control.reset()
    yield control
    control.clear_faults()  # also lifts any 429/418 window
    control.pause_streams(False)
    for venue in ("binance", "upbit"):
        control.freeze(venue, frozen=False)
