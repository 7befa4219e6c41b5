"""The residual hedger looks again at inventory it could not unwind only when there is reason to: the
residual book changed, or UNTRADABLE_RETRY_S passed; in between a tick costs it nothing."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage.domain.book import MarketSnapshot
from arbitrage.runtime.residual_hedger import UNTRADABLE_RETRY_S
from tests.runtime.mock_bot import mock_bot


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the halt file is looked up in the working directory


def test_dust_over_the_bound_is_looked_at_again_on_a_change_or_after_the_retry_time(tmp_path: Path) -> None:
    bot, _ = mock_bot(tmp_path, max_ticks=1)
    try:
        hedger = bot.trader.hedger
        tried: list[tuple[str, Decimal]] = []
        unwind = hedger._unwind

        def counting(venue: str, asset: str, signed_qty: Decimal, snapshot: MarketSnapshot) -> bool:
            tried.append((venue, signed_qty))
            return unwind(venue, asset, signed_qty, snapshot)

        hedger._unwind = counting  # type: ignore[method-assign]
        snapshot = bot.feed.snapshot(None)

        def at(dt: float) -> MarketSnapshot:
            return dataclasses.replace(snapshot, ts=snapshot.ts + dt)

        # Over the 0.0001 bound, on markets whose rules are unknown: no venue takes it.
        for market in (("upbit", "BTC/KRW"), ("binance", "BTC/USDT")):
            del bot.state.rules[market]
        bot.trader.residuals.add("upbit", "BTC", Decimal("0.0002"), Decimal(0))
        bot.trader.residuals.add("binance", "BTC", Decimal("0.0001"), Decimal(0))
        hedger.hedge_residuals(at(0.0))
        first = len(tried)
        assert first > 0
        hedger.hedge_residuals(at(1.0))  # nothing changed, no retry due: not looked at
        assert len(tried) == first
        bot.trader.residuals.add("upbit", "BTC", Decimal("0.00000001"), Decimal(0))
        hedger.hedge_residuals(at(2.0))  # the book changed: looked at again at once
        second = len(tried)
        assert second > first
        hedger.hedge_residuals(at(2.0 + UNTRADABLE_RETRY_S / 2))
        assert len(tried) == second
        hedger.hedge_residuals(at(2.0 + UNTRADABLE_RETRY_S))  # the retry is due
        assert len(tried) > second
        assert bot.state.unhedged[("upbit", "BTC")] == Decimal("0.00020001")
    finally:
        bot.close()
