"""Entries approved at the start of a tick are checked again just before they go out.

The orders before an entry in the same tick can take seconds: a venue that became degraded
meanwhile, or books that aged past safety.max_book_age_ms, stop the entries still to come.
The real mock bot, with one venue wrapped to be slow or to trip its breaker on its first order.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from arbitrage.clock import FakeClock
from arbitrage.domain.orders import OrderReport, OrderRequest
from arbitrage.runtime.wiring import Bot
from arbitrage.venues.base import Venue
from tests.runtime.mock_bot import mock_bot

# Inventory arbitrage with small entries: most trading ticks approve an entry on each asset.
OVERRIDES = {"exit": {"mode": "none"}, "signal": {"max_notional": 300000}}
TICKS = 60


class TroubledVenue:
    """A mock venue that trips its breaker on its first order, or whose orders take `slow_s`."""

    def __init__(self, inner: Venue, clock: FakeClock, trips: bool = False, slow_s: float = 0.0) -> None:
        self._inner = inner
        self._clock = clock
        self._trips = trips
        self._slow_s = slow_s
        self.tripped = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def degraded(self) -> bool:
        return self.tripped

    def submit(self, request: OrderRequest) -> OrderReport:
        self._clock.advance(self._slow_s)
        report = self._inner.submit(request)
        self.tripped = self._trips
        return report


def entries_per_tick(data_dir: Path) -> Counter[int]:
    """Entries that went out, per tick; a tick's entries are written together, and one that may
    no longer go out when its turn comes is withdrawn: its orders CANCELLED, never sent."""
    with sqlite3.connect(data_dir / "ledger.sqlite3") as db:
        sent = db.execute(
            "select tick from opportunities o where exists (select 1 from orders r where "
            "r.opportunity_id = o.opportunity_id and coalesce(r.reason, '') not like 'not sent:%')"
        )
        return Counter(tick for (tick,) in sent)


def withdrawn(data_dir: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(data_dir / "ledger.sqlite3") as db:
        rows = db.execute("select client_order_id, state, reason from orders where reason like 'not sent:%'")
        return list(rows)


def troubled_bot(tmp_path: Path, **trouble: Any) -> Bot:
    clock = FakeClock()
    bot, _ = mock_bot(tmp_path, overrides=OVERRIDES, max_ticks=TICKS, clock=clock)
    venues = bot.venues.by_name  # the one mapping the feed, the sender and the trader share
    venues["binance"] = TroubledVenue(venues["binance"], clock, **trouble)
    return bot


def test_an_entry_waits_when_its_venue_degrades_during_the_tick(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="arbitrage.execution")
    bot = troubled_bot(tmp_path, trips=True)
    bot.loop.run()
    bot.close()
    skipped = [r.getMessage() for r in caplog.records if "binance became degraded" in r.getMessage()]
    assert skipped, "no tick approved a second entry after the first one tripped the breaker"
    # Only the very first entry went out: later ones in its tick were stopped here, later
    # ticks' by safety (VENUE_DEGRADED).
    assert sum(entries_per_tick(tmp_path).values()) == 1
    assert bot.state.counters.rejections["VENUE_DEGRADED"] > 0
    stopped = withdrawn(tmp_path)
    assert stopped
    assert all(state == "CANCELLED" and "binance became degraded" in why for _, state, why in stopped)


def test_an_entry_waits_when_its_books_aged_past_the_safety_limit_during_the_tick(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="arbitrage.execution")
    bot = troubled_bot(tmp_path, slow_s=2.5)  # its binance leg alone outlasts max_book_age_ms 2000
    bot.loop.run()
    bot.close()
    skipped = [r.getMessage() for r in caplog.records if "safety.max_book_age_ms" in r.getMessage()]
    assert skipped, "no tick approved a second entry"
    assert "ms old > safety.max_book_age_ms 2000" in skipped[0]
    per_tick = entries_per_tick(tmp_path)
    assert len(per_tick) >= 2 and set(per_tick.values()) == {1}, per_tick
