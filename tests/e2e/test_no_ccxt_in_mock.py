"""A mock run needs no exchange client, no HTTP stack and no PostgreSQL driver, and with the shipped
config (no recording, Redis off) neither pyarrow nor redis-py: a start pays only for what it uses
(pyarrow and numpy alone were a third of a mock start). The real command, with Python's import log
(PYTHONPROFILEIMPORTTIME, the same as -X importtime) read from stderr.

A paper run against the simulator, for contrast, does import ccxt: the log is read right. And of
ccxt's exchanges only the two it trades on.
"""

from __future__ import annotations

import re
from pathlib import Path

from arbitrage.config import known_exchange_ids
from arbitrage.sim.control import SimControl
from arbitrage.sim.server import SimServer
from tests.e2e.runner import merge, run_bot
from tests.e2e.sim_fixture import sim_overrides

SIM_SEED = 5  # the simulator fixtures of tests/conftest.py: this seed,
SIM_RESET_EACH_TEST = True  # and every test from the seeded market with fresh accounts


IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$")
NOT_IN_MOCK = ("ccxt", "aiohttp", "psycopg", "pyarrow", "numpy", "redis")
IMPORT_LOG = {"PYTHONPROFILEIMPORTTIME": "1"}
CCXT_PACKAGES = ("ccxt", "ccxt.async_support", "ccxt.pro")  # each has a module per exchange


def imported(stderr: str) -> set[str]:
    """Every module the process imported, from the import-time lines on its stderr."""
    return {m.group(1) for line in stderr.splitlines() if (m := IMPORT_LINE.match(line))}


def packages(modules: set[str], roots: tuple[str, ...]) -> set[str]:
    """The modules that are, or are inside, any of `roots` (psycopg_binary counts as psycopg)."""
    return {m for m in modules if m.split(".")[0].startswith(roots)}


def test_a_mock_run_imports_no_exchange_http_or_postgres_package(tmp_path: Path) -> None:
    run = run_bot(tmp_path, "--mock", "--loops", "3", "--interval", "0", env=IMPORT_LOG)
    assert run.code == 0, run.stderr[-3000:]
    assert len(run.metrics_lines()) == 3
    modules = imported(run.stderr)
    assert {"arbitrage.runtime.loop", "arbitrage.venues.mock"} <= modules, sorted(modules)[:20]
    assert packages(modules, NOT_IN_MOCK) == set()


def test_a_paper_run_imports_ccxt_with_only_its_own_exchanges(
    tmp_path: Path, sim_server: SimServer, sim: SimControl
) -> None:
    # Books from the WebSocket stream, so that ccxt.pro (and async_support under it) load too.
    overrides = merge(sim_overrides(sim_server.base_url), {"market_data": {"use_websocket": True}})
    run = run_bot(tmp_path, "--mode", "paper", "--once", overrides=overrides, env=IMPORT_LOG, timeout=120)
    assert run.code == 0, run.stderr[-3000:]
    modules = imported(run.stderr)
    assert {"ccxt", "arbitrage.venues.ccxt_venue", "arbitrage.venues.paper"} <= modules
    assert packages(modules, ("psycopg",)) == set()  # the ledger is SQLite
    # ccxt's packages import all of its ~105 exchanges; the bot loads the two it names
    # (arbitrage/venues/ccxt_import.py).
    ids = known_exchange_ids()
    exchanges = {m for m in modules if m.rpartition(".")[0] in CCXT_PACKAGES and m.rpartition(".")[2] in ids}
    assert exchanges == {f"{package}.{venue}" for package in CCXT_PACKAGES for venue in ("binance", "upbit")}
