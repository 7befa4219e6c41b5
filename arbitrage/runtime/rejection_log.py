"""Safety rejections into the ledger, counted per trading day, asset, venue pair and reason.

Counted in memory and added to the ledger every FLUSH_S seconds and at shutdown, rather than in
each tick's own transaction: most rejecting ticks trade nothing and write nothing else, and a
commit per tick for a statistic would cost more of the tick than the engines do. A SIGKILL loses
at most the last FLUSH_S seconds of counts, never an order or a fill.
"""

from __future__ import annotations

import logging

from arbitrage.clock import Clock
from arbitrage.domain.decisions import SafetyVerdict
from arbitrage.domain.rejections import RejectionTally
from arbitrage.store.ledger import Ledger

log = logging.getLogger("arbitrage.safety")

FLUSH_S = 5.0


class RejectionLog:
    def __init__(self, ledger: Ledger, clock: Clock, flush_s: float = FLUSH_S) -> None:
        self._ledger = ledger
        self._clock = clock
        self._flush_s = flush_s
        self._tally = RejectionTally()
        self._last_flush = clock.monotonic()
        self._failing = False

    def count(self, day: str, verdict: SafetyVerdict, ts: float) -> None:
        o = verdict.opportunity
        self._tally.add(day, o.asset, o.buy_venue, o.sell_venue, verdict.reason or "", ts)

    def flush_if_due(self) -> None:
        if len(self._tally) and self._clock.monotonic() - self._last_flush >= self._flush_s:
            self.flush()

    def flush(self) -> None:
        """Add the counts so far to the ledger; kept for the next flush if the ledger refuses."""
        self._last_flush = self._clock.monotonic()
        rows = self._tally.drain()
        if not rows:
            return
        try:
            self._ledger.add_rejections(rows)
        except Exception:
            self._tally.restore(rows)
            if not self._failing:  # once per outage, not every few seconds
                log.exception("safety rejections not written to the ledger; kept for the next try")
            self._failing = True
            return
        self._failing = False
