"""The graceful shutdown on a real mock bot: flatten planning, step isolation, and running once."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arbitrage.clock import FakeClock
from arbitrage.config import AppConfig, load_config
from arbitrage.runtime.shutdown import Shutdown, flatten_exits
from arbitrage.runtime.wiring import Bot, build_bot

REPO = Path(__file__).resolve().parents[2]
LIVE_LOOP = "arbitrage.live_loop"


class Alerts:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def __call__(self, key: str, text: str, level: str = "ERROR") -> None:
        self.sent.append((key, text, level))


def _config(flatten: bool) -> AppConfig:
    config = load_config(REPO / "config" / "live.yml", "mock")
    # No take profit or stop: positions stay open until the shutdown closes them.
    return config.model_copy(
        update={
            "exit": config.exit.model_copy(update={"min_spread_pct": 50.0, "max_hold_s": 86400.0}),
            "stoploss": config.stoploss.model_copy(update={"static_pct": 90.0}),
            "shutdown": config.shutdown.model_copy(update={"flatten": flatten}),
        }
    )


@pytest.fixture
def bot_factory(tmp_path: Path) -> Iterator[Any]:
    bots: list[Bot] = []
    alerts = Alerts()

    def make(flatten: bool, ticks: int = 40) -> tuple[Bot, Alerts]:
        bot = build_bot(
            _config(flatten),
            data_dir=tmp_path / f"data{len(bots)}",
            interval_s=0.0,
            max_ticks=ticks,
            alert=alerts,
            env={},
            clock=FakeClock(),
            print_line=lambda line: None,
        )
        bots.append(bot)
        bot.loop.run()
        return bot, alerts

    yield make
    for bot in bots:
        bot.close()


def test_flatten_plans_one_exit_per_open_position(bot_factory: Any) -> None:
    bot, _ = bot_factory(flatten=True)
    assert len(bot.state.positions) >= 2
    intents = flatten_exits(bot, "SHUTDOWN")
    assert sorted(i.position_id for i in intents) == sorted(bot.state.positions)
    for intent in intents:
        position = bot.state.positions[intent.position_id]
        assert intent.reason == "SHUTDOWN" and intent.qty == position.qty
        assert intent.sell is not None and intent.sell.venue == position.buy_venue
        assert intent.buy is not None and intent.buy.venue == position.sell_venue


def test_shutdown_with_flatten_closes_everything_and_saves_the_state(
    bot_factory: Any, tmp_path: Path
) -> None:
    bot, alerts = bot_factory(flatten=True)
    opened = set(bot.state.positions)
    assert opened
    shutdown = Shutdown(bot, alerts, tmp_path / "state.json")
    assert shutdown.run("test", 0) == 0
    assert bot.state.positions == {}
    assert bot.ledger.open_positions() == [] and bot.ledger.open_orders() == []
    closed = {p.position_id: p for p in (bot.ledger.position(pid) for pid in opened) if p is not None}
    assert {p.exit_reason for p in closed.values()} == {"SHUTDOWN"}
    document = json.loads((tmp_path / "state.json").read_text(encoding="utf-8"))
    assert document["open_positions"] == [] and document["reason"] == "test"
    assert alerts.sent[-1][0] == "shutdown" and alerts.sent[-1][2] == "INFO"


def test_a_failing_step_does_not_stop_the_next_ones(
    bot_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bot, alerts = bot_factory(flatten=False, ticks=5)
    blocked = tmp_path / "state-dir"
    blocked.mkdir()
    (blocked / "state.json").mkdir()  # a directory where the file should go: the save step fails
    with caplog.at_level(logging.INFO, logger=LIVE_LOOP):
        Shutdown(bot, alerts, blocked / "state.json").run("CRITICAL", 3)
    messages = [r.getMessage() for r in caplog.records if r.name == LIVE_LOOP]
    assert "shutdown: 5/6 save state failed; continuing with the next step" in messages
    assert "shutdown: 6/6 final alert sent; done" in messages
    assert (
        alerts.sent[-1][0] == "shutdown" and alerts.sent[-1][2] == "ERROR"
    )  # a non-zero exit alerts as an error


def test_shutdown_runs_once(bot_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bot, alerts = bot_factory(flatten=False, ticks=3)
    shutdown = Shutdown(bot, alerts, tmp_path / "state.json")
    shutdown.run("first", 0)
    before = len(alerts.sent)
    with caplog.at_level(logging.INFO, logger=LIVE_LOOP):
        assert shutdown.run("second", 0) == 0
    assert len(alerts.sent) == before
    assert [r.getMessage() for r in caplog.records if r.name == LIVE_LOOP] == [
        "shutdown already under way; second ignored"
    ]
