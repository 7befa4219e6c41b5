"""The trader's steps that run outside the engines (orders of unknown outcome, residual inventory)
are isolated like an engine: one that raises is a live error of its tick, not the end of the run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from arbitrage.domain.book import MarketSnapshot
from arbitrage.errors import TemporaryVenueError
from tests.runtime.mock_bot import mock_bot


def test_a_residual_step_that_raises_costs_a_live_error_and_the_loop_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="arbitrage.execution")
    bot, recorder = mock_bot(tmp_path, max_ticks=5)

    def failing(snapshot: MarketSnapshot) -> None:
        raise TemporaryVenueError("upbit", "balance not sent: circuit breaker open")

    bot.trader.resolve_unresolved = failing  # type: ignore[method-assign]
    assert bot.loop.run() == 0
    bot.close()
    assert len(recorder.lines) == 5  # every tick ran to its metrics line
    assert bot.state.counters.live_errors >= 5
    failed = [r for r in caplog.records if "resolving orders of unknown outcome failed" in r.getMessage()]
    assert len(failed) == 5 and failed[0].exc_info is not None
