"""Where `arb watch` reads the console state: the health server over HTTP, or Redis (the real one,
db 13, a key prefix of the test's own); what it says when it cannot."""

from __future__ import annotations

import pytest

from arbitrage.clock import FakeClock
from arbitrage.ops.health_server import HealthServer, HealthStatus
from arbitrage.ops.metrics import BotMetrics
from arbitrage.ops.watchdog import Level
from arbitrage.report.watch import HttpState, RedisConsole, StateUnavailable
from arbitrage.store.redis_state import RedisState
from tests.e2e.ops_harness import free_port
from tests.report.conftest import REDIS_URL


def test_http_state_reads_get_state_and_names_what_went_wrong() -> None:
    document: dict[str, object] | None = None
    server = HealthServer(
        "127.0.0.1", 0, lambda: HealthStatus(Level.OK), BotMetrics(), state=lambda: document
    )
    server.start()
    try:
        source = HttpState(server.url)
        with pytest.raises(StateUnavailable, match="running, no tick finished yet"):
            source.read()
        document = {"tick": 9}
        assert source.read() == {"tick": 9}
    finally:
        server.stop()
    with pytest.raises(StateUnavailable, match=r"^connection refused$"):
        HttpState(f"http://127.0.0.1:{free_port()}").read()


def test_redis_console_reads_what_the_bot_stored(prefix: str) -> None:
    source = RedisConsole(REDIS_URL, prefix, "arb-9")
    with pytest.raises(StateUnavailable, match=r"no console state: is the bot running with redis\.enabled"):
        source.read()
    writer = RedisState(REDIS_URL, prefix, "arb-9", 10.0, 100, 1.0, FakeClock())
    try:
        assert writer.save_console({"tick": 4, "halted": True})
    finally:
        writer.close()
    assert source.read() == {"tick": 4, "halted": True}
    assert source.where == f"{REDIS_URL} key {prefix}:arb-9:console"


def test_redis_console_says_when_redis_is_away() -> None:
    with pytest.raises(StateUnavailable, match="redis unreachable"):
        RedisConsole(f"redis://127.0.0.1:{free_port()}/0", "arb", "arb-1").read()
