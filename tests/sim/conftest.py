"""Fixtures for the simulator tests: a real SimServer on a free 127.0.0.1 port and real ccxt clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer


@pytest.fixture(scope="module")
def sim_server() -> Iterator[SimServer]:
    server = SimServer(seed=7, tick_ms=100)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sim(sim_server: SimServer) -> Iterator[SimControl]:
    control = SimControl(sim_server.base_url)
    yield control
    control.clear_faults()
    control.pause_streams(False)
    for venue in ("binance", "upbit"):
        control.freeze(venue, frozen=False)


@pytest.fixture
def api_key(request: pytest.FixtureRequest) -> str:
    """An account of the test's own: the sim opens one per API key."""
    return "key-" + request.node.name
