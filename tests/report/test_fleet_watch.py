"""`arb watch --fleet`: the fleet read from the real Redis (db 13, key prefixes of the test's own) as
the workers leave it (budget keys, heartbeats, console states), and drawn on the dashboard: every
worker, alive or dead, what it holds, and the shared budget against the limits."""

from __future__ import annotations

import re

import pytest

from arbitrage.clock import SystemClock
from arbitrage.report.dashboard import dashboard
from arbitrage.report.fleet_watch import FleetView
from arbitrage.store.redis_state import RedisState
from arbitrage.store.risk_budget import BalanceWant, Limits, RiskBudget
from tests.report.conftest import REDIS_URL
from tests.report.test_dashboard import DOC, NOW, screen
from tests.runtime.mock_bot import mock_config
from tests.waiting import wait_until

DAY = "2026-12-03"
WANT = [BalanceWant("upbit", "KRW", 10.0, 1e6)]


def test_the_fleet_is_read_from_redis_and_drawn_with_its_dead(prefix: str) -> None:
    config = mock_config(
        {
            "instance": "w1",
            "redis": {"enabled": True, "url": REDIS_URL, "key_prefix": prefix},
            "fleet": {"enabled": True, "key_prefix": prefix, "lease_s": 30.0},
            "safety": {"max_open_positions": 5, "max_exposure": 10_000.0},
        }
    )
    clock, limits = SystemClock(), Limits.of(config)
    alive = RiskBudget(REDIS_URL, prefix, "w1", 30.0, limits, clock)
    dead = RiskBudget(REDIS_URL, prefix, "w2", 0.3, limits, clock)
    w1_state = RedisState(REDIS_URL, prefix, "w1", 10.0, 100, 1.0, clock)
    view = FleetView(config)
    try:
        # w1 lives: a heartbeat, its console state (two assets, two open positions), one position
        # settled and one entry in flight.
        assert w1_state.heartbeat()
        console = {**DOC, "spreads": {"BTC": {}, "ETH": {}}, "positions": DOC["positions"] * 2}
        assert w1_state.save_console(console)
        assert alive.reserve("a1", 1_000.0, WANT, ["upbit"], DAY) is None
        alive.sync({"a1": 1_200.0})
        assert alive.reserve("a2", 800.0, WANT, ["upbit"], DAY) is None
        # w2 died holding a position and an entry in flight: no heartbeat, its lease runs out.
        assert dead.reserve("d1", 3_000.0, WANT, ["upbit"], DAY) is None
        dead.sync({"d1": 3_000.0})
        assert dead.reserve("d2", 2_000.0, WANT, ["upbit"], DAY) is None
        dead.close()
        wait_until(lambda: view.read()["workers"][1]["lease_s"] is None, 5.0, "w2's lease to end")

        fleet = view.read()
        w1, w2 = fleet["workers"]
        assert w1["instance"] == "w1" and w1["alive"] and w1["heartbeat_age_s"] < 5.0
        assert w1["symbols"] == ["BTC", "ETH"] and w1["open_positions"] == 2
        assert (w1["reserved"], w1["in_flight"], w1["exposure"]) == (2, 1, 2_000.0)
        assert w1["lease_s"] == pytest.approx(30.0, abs=2.0)
        assert w2["instance"] == "w2" and not w2["alive"] and w2["heartbeat_age_s"] is None
        # Its position and the entry whose outcome is unknown still count; its balances do not.
        assert (w2["reserved"], w2["in_flight"], w2["exposure"]) == (2, 0, 5_000.0)
        assert w2["symbols"] == [] and w2["open_positions"] is None
        assert (fleet["reserved"], fleet["exposure"]) == (4, 7_000.0)
        limits_shown = {"max_open_positions": 5, "max_exposure": 10_000.0, "daily_loss_limit": 1_000_000.0}
        assert fleet["limits"] == limits_shown

        text = screen(dashboard(DOC, "x", now=NOW, fleet=fleet), height=50)
        assert "1/2 worker(s) alive   positions 4/5   exposure 7,000/10,000" in text
        assert re.search(r"w1\s+alive\s+\d\.\ds\s+\d+\.\ds\s+BTC,ETH\s+2\s+2\s+1\s+2,000", text), text
        assert re.search(r"w2\s+DEAD\s+-\s+-\s+-\s+-\s+2\s+0\s+5,000", text), text
        assert "open positions" in text and "last events" in text  # the bot's own panels stay
    finally:
        view.close()
        alive.close()
        w1_state.close()


def test_a_fleet_that_cannot_be_read_is_said_so() -> None:
    text = screen(dashboard(DOC, "x", now=NOW, fleet={"error": "shared risk budget unreachable"}))
    assert "fleet unreadable: shared risk budget unreachable" in text
