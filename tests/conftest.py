"""Fixtures shared across the suite: the real PostgreSQL at 127.0.0.1:5432 in throwaway schemas, the
loopback exchange simulator on a free 127.0.0.1 port, and a private redis-server to kill."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from arbitrage.sim.control import SimControl
from arbitrage.sim.market import DEFAULT_ASSETS, sim_assets
from arbitrage.sim.server import SimServer
from arbitrage.venues import ccxt_import
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


def pytest_configure(config: pytest.Config) -> None:
    """ccxt's packages as the bot imports them (arbitrage/venues/ccxt_import.py), before any test
    module imports ccxt: each worker collects the whole suite, and with ccxt's own __init__s its
    collection alone imported all ~105 exchanges three times over (ccxt, async_support, pro)."""
    ccxt_import.install()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests (marked slow) dealt out to the heads of the workers' shares, the rest after.

    pytest-xdist's worksteal (pyproject's addopts) first splits the collection into one contiguous
    share per worker, then lets an idle worker take the tail half of the longest queue. With the
    long tests simply first, they all landed in the first worker's share and it ran them one after
    another while the others stole its short tail: the last 30 s of the suite ran one test. Dealt
    round-robin to the heads of the shares, every worker starts on long runs and the short tests
    that fill the end are the ones left to steal.
    """
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    rest = [item for item in items if item.get_closest_marker("slow") is None]
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    items[:] = [item for share in dealt(slow, rest, share_sizes(len(items), workers)) for item in share]


def share_sizes(total: int, workers: int) -> list[int]:
    """How worksteal splits `total` tests between `workers` idle workers at the start."""
    sizes: list[int] = []
    for i in range(workers):
        sizes.append((total - sum(sizes)) // (workers - i))
    return sizes


def dealt(first: list[pytest.Item], rest: list[pytest.Item], sizes: list[int]) -> list[list[pytest.Item]]:
    """Shares of the given sizes: `first` dealt round-robin to their heads, `rest` filling them in order."""
    shares: list[list[pytest.Item]] = [[] for _ in sizes]
    turn = 0
    for item in first:
        while len(shares[turn % len(sizes)]) >= sizes[turn % len(sizes)]:
            turn += 1
        shares[turn % len(sizes)].append(item)
        turn += 1
    queue = iter(rest)
    for share, size in zip(shares, sizes, strict=True):
        share.extend(item for _, item in zip(range(size - len(share)), queue, strict=False))
    return shares


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
    """A loopback exchange simulator shared by a test module; seeded by the module's SIM_SEED, with
    its SIM_COINS coins (BTC and ETH, then made-up ones: arbitrage.sim.market.sim_assets)."""
    coins = getattr(request.module, "SIM_COINS", len(DEFAULT_ASSETS))
    server = SimServer(seed=getattr(request.module, "SIM_SEED", 7), tick_ms=100, assets=sim_assets(coins))
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
