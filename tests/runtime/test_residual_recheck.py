"""The residual hedger looks again at inventory it could not unwind only when there is reason to: the
residual book changed, or UNTRADABLE_RETRY_S passed; in between a tick costs it nothing."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage.domain.book import MarketSnapshot, OrderBook
from arbitrage.runtime.residual_hedger import UNTRADABLE_RETRY_S
from tests.runtime.mock_bot import mock_bot

Books = dict[str, OrderBook | None]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the halt file is looked up in the working directory


def test_dust_over_the_bound_is_looked_at_again_on_a_change_or_after_the_retry_time(tmp_path: Path) -> None:
    bot, _ = mock_bot(tmp_path, max_ticks=1)
    try:
        hedger = bot.trader.hedger
        tried: list[tuple[str, Decimal]] = []
        unwind = hedger._unwind

        def counting(venue: str, asset: str, qty: Decimal, snapshot: MarketSnapshot, books: Books) -> bool:
            tried.append((venue, qty))
            return unwind(venue, asset, qty, snapshot, books)

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


def test_an_assets_tries_read_each_venues_book_once(tmp_path: Path) -> None:
    """The holder's own part and the net on each venue are tried in turn, nothing sent between
    them: one read of a venue's book prices every try there."""
    bot, _ = mock_bot(tmp_path, max_ticks=1)
    try:
        hedger = bot.trader.hedger
        tried: list[str] = []
        reads: list[tuple[str, str]] = []

        def no_book(venue: str, asset: str) -> OrderBook | None:
            reads.append((venue, asset))
            return None  # no venue takes it: every try is made

        unwind = hedger._unwind

        def counting(venue: str, asset: str, qty: Decimal, snapshot: MarketSnapshot, books: Books) -> bool:
            tried.append(venue)
            return unwind(venue, asset, qty, snapshot, books)

        hedger._fresh_book = no_book
        hedger._unwind = counting  # type: ignore[method-assign]
        bot.trader.residuals.add("upbit", "BTC", Decimal("0.02"), Decimal(0))
        bot.trader.residuals.add("binance", "BTC", Decimal("0.01"), Decimal(0))
        hedger.hedge_residuals(bot.feed.snapshot(None))
        assert tried == ["upbit", "upbit", "binance"]  # its own part, then the net on each venue
        assert sorted(reads) == [("binance", "BTC"), ("upbit", "BTC")]
    finally:
        bot.close()
