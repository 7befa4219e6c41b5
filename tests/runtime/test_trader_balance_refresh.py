"""A venue that cannot report its balances right after a trade does not undo the trade's booking.

The balances are refreshed after each group is booked; a venue that refuses the call then (its
breaker open, a Retry-After pause) leaves the last known balances in place, with a warning,
instead of failing the entry, or, from the residual paths outside any engine, the whole loop.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from arbitrage.errors import TemporaryVenueError
from arbitrage.venues.base import Venue
from tests.runtime.mock_bot import mock_bot


class NoBalances:
    """A mock venue whose balance call fails, as a venue with its breaker open refuses it."""

    def __init__(self, inner: Venue) -> None:
        self._inner = inner
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def balances(self) -> dict[str, Decimal]:
        self.refused += 1
        raise TemporaryVenueError(self._inner.name, "balance not sent: circuit breaker open")


def test_entries_are_booked_when_the_balances_cannot_be_refreshed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="arbitrage.execution")
    bot, _ = mock_bot(tmp_path, overrides={"exit": {"mode": "none"}}, max_ticks=40)
    known = dict(bot.state.balances["binance"])
    wrapped = NoBalances(bot.venues.by_name["binance"])
    bot.venues.by_name["binance"] = wrapped  # shared by the trader and the sender
    assert bot.loop.run() == 0
    bot.close()
    counters = bot.state.counters
    assert counters.trades >= 1 and wrapped.refused >= counters.trades
    assert counters.live_errors == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("balances of binance not refreshed" in r.getMessage() for r in caplog.records)
    assert bot.state.balances["binance"] == known  # the last known balances stay
