"""The run assembled in one place: injected clock and venues reach the bot, the hooks come in
order, a lost lease stops the loop whether it is lost before or after the bot exists."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from arbitrage.clock import Clock, FakeClock
from arbitrage.config import AppConfig
from arbitrage.domain.book import BookListener
from arbitrage.ops.logs import reset_logging
from arbitrage.runtime.assembly import EXIT_LEASE_LOST, LeaseLostStop, Run, RunSettings, assemble
from arbitrage.runtime.console_state import ConsoleHook
from arbitrage.runtime.recovery import Recovery
from arbitrage.runtime.supervisor import Supervisor
from arbitrage.venues.base import AlertFn, Venues
from arbitrage.venues.build import build_mock_venues
from tests.runtime.mock_bot import mock_config


@pytest.fixture
def built(tmp_path: Path) -> Iterator[tuple[Run, FakeClock, list[Clock]]]:
    clock = FakeClock()
    asked: list[Clock] = []

    def venues(
        config: AppConfig,
        clock: Clock,
        env: Mapping[str, str],
        alert: AlertFn,
        listeners: Sequence[BookListener],
        recorders: Sequence[BookListener],
    ) -> Venues:
        asked.append(clock)  # a replay passes venues of its own, on its own clock
        return build_mock_venues(config, clock, [*listeners, *recorders])

    settings = RunSettings(tmp_path / "data", tmp_path / "logs", interval_s=1.0, max_ticks=3)
    config = mock_config({"logging": {"console": False}})
    run = assemble(config, settings, {}, clock, make_venues=venues)
    try:
        yield run, clock, asked
    finally:
        run.close()
        reset_logging()


def test_the_injected_clock_and_venues_make_the_bot(built: tuple[Run, FakeClock, list[Clock]]) -> None:
    run, clock, asked = built
    assert asked == [clock] and run.bot.clock is clock
    assert [type(h) for h in run.bot.loop.hooks] == [Recovery, Supervisor, ConsoleHook]
    assert run.dry_run is None and run.health is None and run.redis is None
    assert run.commands is None  # no Telegram credentials, no chat commands


def test_a_run_ticks_then_shuts_down_and_saves_its_state(
    built: tuple[Run, FakeClock, list[Clock]], tmp_path: Path
) -> None:
    run, clock, _ = built
    code, reason = run.loop()
    assert (code, run.bot.state.counters.ticks) == (0, 3)
    assert clock.monotonic() >= 2.0, "three ticks one interval apart, on the injected clock"
    run.finish(reason, code)
    saved = json.loads((tmp_path / "data" / "state.json").read_text(encoding="utf-8"))
    assert (saved["reason"], saved["exit_code"]) == (reason, 0)


def test_a_lease_lost_before_the_loop_exists_stops_it_when_it_does(
    built: tuple[Run, FakeClock, list[Clock]],
) -> None:
    run, _, _ = built
    alerts: list[tuple[str, str, str]] = []
    lost = LeaseLostStop(lambda key, text, level="ERROR": alerts.append((key, text, level)))
    lost("lease connection lost")
    assert not run.bot.loop.stopping
    lost.stop(run.bot.loop)
    assert (run.bot.loop.stopping, run.bot.loop.exit_code) == (True, EXIT_LEASE_LOST)
    assert alerts == [("instance_lease", "lease connection lost; stopping this bot", "CRITICAL")]


def test_a_lease_lost_while_running_stops_the_loop(built: tuple[Run, FakeClock, list[Clock]]) -> None:
    run, _, _ = built
    lost = LeaseLostStop(lambda key, text, level="ERROR": None)
    lost.stop(run.bot.loop)
    assert not run.bot.loop.stopping
    lost("lease connection lost")
    assert run.loop() == (EXIT_LEASE_LOST, "instance lease lost")
    assert run.bot.state.counters.ticks == 0
