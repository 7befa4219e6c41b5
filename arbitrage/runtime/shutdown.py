"""Graceful shutdown (see docs/ARCHITECTURE.md, Shutdown): no new entries, open orders cancelled,
optional flatten, ledger flushed, state saved, a final alert. Each step is logged; none is skipped
because an earlier one failed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from arbitrage.domain.book import MarketSnapshot, OrderBook
from arbitrage.domain.decisions import ExitIntent
from arbitrage.domain.orders import OrderCancelled, OrderState, apply
from arbitrage.domain.pnl import reverse_trade
from arbitrage.engines.execution import plan_exit
from arbitrage.errors import VenueError
from arbitrage.runtime import failpoints
from arbitrage.runtime.state import position_summary
from arbitrage.runtime.wiring import Bot

log = logging.getLogger("arbitrage.live_loop")

FLATTEN_PASSES = 3  # an IOC exit can fill in part; what is left gets another try


class AlertFn(Protocol):
    def __call__(self, key: str, text: str, level: str = "ERROR") -> None: ...


ExitPlanner = Callable[[Bot, str], list[ExitIntent]]  # builds ExitIntents to flatten every position


def flatten_exits(bot: Bot, reason: str) -> list[ExitIntent]:
    """One exit per open position: the reverse trade at fresh books, with the wide unwind slippage.

    A position whose reverse trade cannot be priced (a book or a rule missing) is logged and left
    open: an order at a guessed price could cost more than the position is worth.
    """
    state = bot.state
    fees = {name: status.taker_fee_pct for name, status in state.venues.items()}
    slippage = bot.config.execution.unwind_slippage_pct
    intents: list[ExitIntent] = []
    for position in sorted(state.positions.values(), key=lambda p: p.opened_at):
        books: dict[tuple[str, str], OrderBook] = {}
        for venue in (position.buy_venue, position.sell_venue):
            book = bot.feed.book(venue, position.asset)
            if book is not None:
                books[(venue, position.asset)] = book
        snapshot = MarketSnapshot(ts=bot.clock.time(), books=books, fx=dict(bot.feed.last_fx))
        trade = reverse_trade(position, snapshot, fees)
        sell_rules = state.rules.get((position.buy_venue, position.buy_symbol))
        buy_rules = state.rules.get((position.sell_venue, position.sell_symbol))
        if trade is None or sell_rules is None or buy_rules is None:
            log.warning(
                "shutdown: %s %s cannot be priced for an exit (no book, FX rate or rules); it stays open",
                position.position_id,
                position.asset,
            )
            continue
        intents.append(plan_exit(position, trade, reason, slippage, sell_rules, buy_rules))
    return intents


def state_document(bot: Bot, reason: str, exit_code: int) -> dict[str, Any]:
    state = bot.state
    return {
        "instance": bot.config.instance,
        "mode": state.mode,
        "stopped_at": bot.clock.time(),
        "reason": reason,
        "exit_code": exit_code,
        "day": state.day,
        "daily_realized_pnl": str(state.daily_realized),
        "run_realized_pnl": str(state.run_realized),
        "halted": state.halted,
        "open_positions": [position_summary(p) for p in state.positions.values()],
        "unhedged": {f"{v}:{a}": str(q) for (v, a), q in state.unhedged.items()},
        "open_orders": [o.client_order_id for o in bot.ledger.open_orders()],
        "counters": {k: v for k, v in vars(state.counters).items() if isinstance(v, int)},
    }


def _default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def save_state_file(path: Path, document: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2, default=_default), encoding="utf-8")
    os.replace(tmp, path)


class Shutdown:
    """Runs the six steps once. `in_progress` tells a signal handler that a stop is under way.

    The venue steps (cancel, flatten) stop starting new venue calls once `shutdown.timeout_s` has
    passed, so a hung venue cannot keep the process alive; the ledger, state and alert steps
    always run.
    """

    def __init__(
        self,
        bot: Bot,
        alert: AlertFn,
        state_file: Path,
        flatten: ExitPlanner | None = flatten_exits,
        save_remote: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self._bot = bot
        self._alert = alert
        self._state_file = state_file
        self._flatten = flatten
        self._save_remote = save_remote
        self._deadline = float("inf")
        self.in_progress = False
        self.done = False

    def run(self, reason: str, exit_code: int) -> int:
        if self.in_progress:
            log.warning("shutdown already under way; %s ignored", reason)
            return exit_code
        self.in_progress = True
        bot = self._bot
        # Real time: the deadline bounds real venue calls even when the bot runs on a fake clock.
        self._deadline = time.monotonic() + bot.config.shutdown.timeout_s
        log.info("shutdown: begin (%s, exit code %d)", reason, exit_code)
        failpoints.pause("shutdown.begun")
        bot.state.entries_blocked = f"shutting down: {reason}"
        log.info("shutdown: 1/6 new entries stopped")
        self._step("2/6 cancel open orders", self._cancel_open_orders)
        if bot.config.shutdown.flatten and self._flatten is not None:
            self._step("3/6 flatten positions", self._flatten_positions)
        else:
            log.info(
                "shutdown: 3/6 flatten skipped (shutdown.flatten is off); %d position(s) stay open",
                len(bot.state.positions),
            )
        self._step("4/6 flush ledger", lambda: self._flush_ledger())
        document = state_document(bot, reason, exit_code)
        self._step("5/6 save state", lambda: self._save(document))
        self._alert(
            "shutdown",
            f"{bot.config.instance} stopped: {reason} (exit {exit_code}); "
            f"open positions {len(bot.state.positions)}, "
            f"realized {bot.state.run_realized:.0f} {bot.config.accounting_currency}",
            "INFO" if exit_code == 0 else "ERROR",
        )
        log.info("shutdown: 6/6 final alert sent; done")
        self.done = True
        return exit_code

    def _step(self, name: str, action: Callable[[], object]) -> None:
        try:
            action()
            log.info("shutdown: %s done", name)
        except Exception:
            log.exception("shutdown: %s failed; continuing with the next step", name)

    def _flush_ledger(self) -> None:
        # The safety rejections counted since their last write first, so that the flush covers them.
        self._bot.loop.rejection_log.flush()
        self._bot.ledger.flush()

    def _out_of_time(self, what: str) -> bool:
        if time.monotonic() < self._deadline:
            return False
        log.warning(
            "shutdown: shutdown.timeout_s (%.0fs) reached; %s skipped",
            self._bot.config.shutdown.timeout_s,
            what,
        )
        return True

    def _cancel_open_orders(self) -> None:
        bot = self._bot
        for order in bot.ledger.open_orders():
            venue = bot.venues.by_name.get(order.venue)
            if venue is None:
                continue
            if self._out_of_time(f"cancel of {order.client_order_id}"):
                continue
            try:
                # A PENDING order was written and its sending interrupted: it may or may not
                # have reached the venue, which is asked (by client order id) like any other.
                report = venue.cancel(order.symbol, order.client_order_id)
            except VenueError as err:
                log.warning("shutdown: cancel of %s failed: %s", order.client_order_id, err)
                continue
            if report is None and order.state is OrderState.PENDING:
                bot.ledger.update_order(
                    apply(order, OrderCancelled("never reached the venue (shutdown)")), bot.clock.time()
                )
                log.info("shutdown: %s never reached its venue; marked CANCELLED", order.client_order_id)
                continue
            quote = order.symbol.partition("/")[2]
            fx = bot.feed.last_fx.get(quote, 0.0) if bot.feed.last_fx else 0.0
            if report is None:
                bot.ledger.update_order(
                    replace(order, reason="unknown at venue at shutdown"), bot.clock.time()
                )
                continue
            bot.sender.apply_report(order, report, fx)
            log.info("shutdown: %s -> %s", order.client_order_id, report.state.value)

    def _flatten_positions(self) -> None:
        assert self._flatten is not None
        bot = self._bot
        for attempt in range(1, FLATTEN_PASSES + 1):
            if not bot.state.positions or self._out_of_time("flatten"):
                break
            intents = self._flatten(bot, "SHUTDOWN")
            if not intents:
                break
            log.info("shutdown: flatten pass %d: %d exit(s)", attempt, len(intents))
            for intent in intents:
                if self._out_of_time(f"exit of {intent.position_id}"):
                    break
                try:
                    bot.trader.exit(intent)
                except Exception:
                    log.exception("shutdown: exit of %s failed", intent.position_id)
        left = sorted(bot.state.positions)
        if left:
            log.warning("shutdown: %d position(s) still open after flatten: %s", len(left), ", ".join(left))
        else:
            log.info("shutdown: every position closed")

    def _save(self, document: dict[str, Any]) -> None:
        save_state_file(self._state_file, document)
        if self._save_remote is not None and not self._save_remote(document):
            log.warning("shutdown: state not saved to Redis (unreachable); the state file has it")
