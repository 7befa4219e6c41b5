"""What a trade writes besides its orders, and the bot state that follows from it.

Shared by the pair path (PairTrader, its entry and exit kinds) and the residual hedger: hedge
events, positions, the day's PnL, the dashboards' event stream, balances after trading, and the
exit attempts the exit engines back off on. The ledger writes run inside the caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from arbitrage.clock import Clock
from arbitrage.config import ExitConfig
from arbitrage.domain.exit_retry import first_failure
from arbitrage.domain.money import ZERO
from arbitrage.domain.positions import PairPosition
from arbitrage.errors import VenueError
from arbitrage.runtime.state import BotState
from arbitrage.store.ledger import Ledger
from arbitrage.venues.base import Venue

log = logging.getLogger("arbitrage.execution")

AlertFn = Callable[..., None]  # (key, text) or (key, text, level); the level defaults to ERROR
PublishFn = Callable[[str, dict[str, Any]], object]  # the event stream for dashboards (Redis)


class Bookkeeper:
    def __init__(
        self,
        exit: ExitConfig,
        accounting_currency: str,
        state: BotState,
        ledger: Ledger,
        venues: Mapping[str, Venue],
        alert: AlertFn,
        clock: Clock,
        publish: PublishFn | None = None,
    ) -> None:
        self.exit = exit
        self.accounting_currency = accounting_currency
        self.state = state
        self.ledger = ledger
        self.clock = clock
        self.alert = alert
        self._venues = venues
        self._publish = publish

    def event(self, event: str, **payload: Any) -> None:
        if self._publish is not None:
            self._publish(event, {k: str(v) if isinstance(v, Decimal) else v for k, v in payload.items()})

    def record_hedge(
        self, group: str, asset: str, venue: str, kind: str, qty: Decimal, cost: Decimal, detail: str
    ) -> None:
        self.ledger.record_hedge_event(group, asset, venue, kind, qty, cost, detail, self.clock.time())
        self.event(
            "hedge", group=group, asset=asset, venue=venue, kind=kind, qty=qty, result=cost, detail=detail
        )
        # A residual is bookkeeping (a sliver booked, or dust moved out of a position): the unwind
        # that follows past the bound is the event an operator must see.
        level = logging.INFO if kind == "residual" else logging.WARNING
        log.log(level, "hedge %s %s %s %s qty=%s result=%s: %s", kind, group, asset, venue, qty, cost, detail)

    def save_position(self, position: PairPosition, realized_delta: Decimal, trades: int) -> None:
        self.ledger.save_position(position, self.clock.time())
        self.state.put_position(position)
        fees = position.entry_fees if trades else ZERO
        self.book_daily(realized_delta, fees, ZERO, trades)

    def book_daily(self, realized: Decimal, fees: Decimal, hedge_cost: Decimal, trades: int) -> None:
        if not realized and not fees and not hedge_cost and not trades:
            return
        self.state.book_realized(realized)
        self.ledger.add_daily_pnl(self.state.day, realized, fees, hedge_cost, trades, self.clock.time())

    def refresh_balances(self, *venues: str) -> None:
        # Runs after the group is booked: a venue that cannot answer now (breaker open, a
        # Retry-After pause) must not turn a booked trade into a failed one, nor, from the
        # residual paths that run outside any engine, stop the loop. The next refresh catches up.
        for name in dict.fromkeys(venues):
            try:
                self.state.balances[name] = self._venues[name].balances()
            except VenueError as err:
                log.warning("balances of %s not refreshed (last known kept): %s", name, err)

    # Exit attempts -------------------------------------------------------------------------

    def exit_failed(
        self, position: PairPosition, group: str, sent: Decimal, closed: Decimal, why: str
    ) -> None:
        """Count a failed exit attempt: the exit engines back off; alert on the first one only."""
        pid, now = position.position_id, self.clock.time()
        before = self.state.exit_retries.get(pid)
        retry = first_failure(pid, now, why) if before is None else before.after(now, why)
        self.state.exit_retries[pid] = retry
        ex = self.exit
        wait = retry.retry_at(ex.retry_backoff_s, ex.retry_backoff_max_s) - now
        log.warning(
            "exit %s of %s failed (attempt %d): closed %s of %s; %s; next attempt in %.1fs at the earliest",
            group, pid, retry.failures, closed, sent, why, wait,
        )  # fmt: skip
        if before is None:
            self.alert(
                f"exit-failed:{pid}",
                f"Exit of {pid} ({position.asset}, {position.qty} open) failed: closed {closed} of {sent}; "
                f"{why}. Retrying with backoff from {ex.retry_backoff_s:g}s up to "
                f"{ex.retry_backoff_max_s:g}s ({ex.stoploss_retry_backoff_max_s:g}s for a stop loss); "
                "no further alert until it closes.",
            )

    def exit_done(self, position: PairPosition, what: str) -> None:
        """An exit attempt that closed what it was sent for ends the backoff; say so if it had failed."""
        retry = self.state.exit_retries.pop(position.position_id, None)
        if retry is None:
            return
        state = "closed" if position.qty <= 0 else f"{position.qty} still open"
        text = (
            f"Exit of {position.position_id} ({position.asset}) recovered after {retry.failures} failed "
            f"attempt(s) over {self.clock.time() - retry.first_failed_at:.0f}s: {what}, position {state}"
        )
        log.warning("%s", text)
        self.alert(f"exit-recovered:{position.position_id}", text, "INFO")
