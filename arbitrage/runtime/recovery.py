"""Start-up reconciliation: make the ledger agree with the venues before trading
(see docs/ARCHITECTURE.md, Recovery).

1. Every order not in a terminal state is looked up at its venue by client order id and what
   happened while the bot was down is applied (fills, cancels); an order the venue never saw is
   closed in the ledger (a PENDING order is asked about too: it may have gone out before the crash).
2. Every entry or exit group whose bookkeeping a crash interrupted is finished: its legs are
   rebuilt from the ledger, the uneven part is retried or unwound, and the position, hedge events
   and daily PnL are booked in one transaction, exactly as an uninterrupted tick would have.
3. The inventory outside positions (residuals) is rebuilt from the ledger: what the orders filled
   per venue minus what the positions hold.
Entries stay blocked while any order's outcome is still unknown; the hook retries until it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from arbitrage.clock import Clock
from arbitrage.domain import ids
from arbitrage.domain.legs import LegTally, ResidualBook
from arbitrage.domain.money import ZERO, dec
from arbitrage.domain.orders import Order, OrderCancelled, OrderRejected, OrderState, apply
from arbitrage.domain.positions import PairPosition
from arbitrage.errors import InvalidTransition, VenueError
from arbitrage.runtime.loop import TickReport
from arbitrage.runtime.order_sender import OrderSender
from arbitrage.runtime.pair_kinds import EntryTrade, ExitTrade
from arbitrage.runtime.pair_trader import PairTrader
from arbitrage.runtime.state import BotState
from arbitrage.store.ledger import Ledger
from arbitrage.venues.base import Venue

log = logging.getLogger("arbitrage.recovery")

BLOCK_PREFIX = "recovery:"
AlertFn = Callable[[str, str], None]
FxFn = Callable[[], Mapping[str, float]]
MidFn = Callable[[str, str], float | None]  # (venue, asset) -> mid price in the venue's quote


@dataclass
class RecoveryReport:
    orders: list[str] = field(default_factory=list)  # one line per recovered order
    groups: list[str] = field(default_factory=list)  # one line per finished group
    unresolved: list[str] = field(default_factory=list)  # client order ids with no answer yet
    residuals: dict[tuple[str, str], Decimal] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.unresolved


class Recovery:
    def __init__(
        self,
        ledger: Ledger,
        venues: Mapping[str, Venue],
        sender: OrderSender,
        trader: PairTrader,
        state: BotState,
        clock: Clock,
        alert: AlertFn,
        fx: FxFn,
        mid: MidFn,
        retry_every_s: float = 5.0,
    ) -> None:
        self._ledger = ledger
        self._venues = venues
        self._sender = sender
        self._trader = trader
        self._state = state
        self._clock = clock
        self._alert = alert
        self._fx = fx
        self._mid = mid
        self._retry_every_s = retry_every_s
        self._last_try = float("-inf")
        self.last: RecoveryReport | None = None

    def run(self) -> RecoveryReport:
        report = RecoveryReport()
        fx = self._fx()
        for order in self._ledger.open_orders():
            self._resolve(order, fx, report)
        for group in self._ledger.unconcluded_groups():
            self._finish_group(group, fx, report)
        report.residuals = self._rebuild_residuals(fx)
        self.last = report
        if report.complete:
            if (self._state.entries_blocked or "").startswith(BLOCK_PREFIX):
                self._state.entries_blocked = None
                log.warning("recovery complete: entries allowed again")
        else:
            self._state.entries_blocked = (
                f"{BLOCK_PREFIX} {len(report.unresolved)} order(s) with unknown outcome: "
                f"{', '.join(report.unresolved[:5])}"
            )
            log.error(
                "recovery incomplete, entries blocked until the venues answer: %s",
                ", ".join(report.unresolved),
            )
            self._alert(
                "recovery", f"Recovery incomplete: {len(report.unresolved)} order(s) with unknown outcome"
            )
        return report

    def after_tick(self, tick: TickReport) -> int | None:
        """Retry an incomplete recovery on its own schedule; never stops the loop."""
        if self.last is None or self.last.complete:
            return None
        now = self._clock.monotonic()
        if now - self._last_try >= self._retry_every_s:
            self._last_try = now
            self.run()
        return None

    # Orders -------------------------------------------------------------------------------

    def _resolve(self, order: Order, fx: Mapping[str, float], report: RecoveryReport) -> None:
        venue = self._venues.get(order.venue)
        before = order.state
        if venue is None:
            report.unresolved.append(order.client_order_id)
            log.error(
                "recovery: %s is on venue %s, which is not configured", order.client_order_id, order.venue
            )
            return
        rate = fx.get(venue.quote, 0.0)
        try:
            found = venue.fetch_order(order.symbol, order.client_order_id)
            if found is not None:
                order = self._sender.apply_report(order, found, rate)
                if not order.state.terminal:
                    cancelled = venue.cancel(order.symbol, order.client_order_id)
                    if cancelled is not None:
                        order = self._sender.apply_report(order, cancelled, rate)
        except VenueError as err:
            report.unresolved.append(order.client_order_id)
            self._sender.unresolved[order.client_order_id] = order
            log.warning("recovery: %s unresolved (%s)", order.client_order_id, err)
            return
        if found is None:
            order = self._close_unknown(order)
        self._sender.unresolved.pop(order.client_order_id, None)
        line = (
            f"{order.client_order_id} {order.venue} {order.side} {order.qty}: {before.value} -> "
            f"{order.state.value} filled {order.filled_qty}" + (f" ({order.reason})" if order.reason else "")
        )
        report.orders.append(line)
        log.warning("recovered order %s", line)

    def _close_unknown(self, order: Order) -> Order:
        """The venue never saw it: a PENDING order was never sent or never arrived; nor did a later one."""
        event = (
            OrderCancelled("never reached the venue (recovered)")
            if order.state is OrderState.PENDING
            else OrderRejected("never reached the venue (recovered)")
        )
        try:
            closed = apply(order, event)
        except InvalidTransition:
            closed = apply(order, OrderCancelled("unknown at the venue (recovered)"))
        self._ledger.update_order(closed, self._clock.time())
        return closed

    # Groups -------------------------------------------------------------------------------

    def _finish_group(self, group: str, fx: Mapping[str, float], report: RecoveryReport) -> None:
        orders = self._ledger.group_orders(group)
        if any(not o.state.terminal for o in orders):
            return  # an order of it is still unresolved; the next attempt finishes it
        purposes = {o.purpose for o in orders}
        if "entry" in purposes:
            line = self._finish_entry(group, orders, fx)
        elif "exit" in purposes:
            line = self._finish_exit(group, orders, fx)
        else:
            # A residual unwind: its fills are counted when the residuals are rebuilt below.
            self._ledger.conclude_group(group, "residual", self._clock.time())
            line = f"{group}: residual unwind booked as inventory"
        report.groups.append(line)
        log.warning("recovered group %s", line)

    def _tallies(
        self, orders: list[Order], legs: tuple[str, str], sides: tuple[str, str], fx: Mapping[str, float]
    ) -> tuple[LegTally, LegTally] | None:
        """Both legs of a group rebuilt from its orders: each leg's own, retry and unwind orders."""
        firsts = [next((o for o in orders if ids.leg_of(o.client_order_id) == leg), None) for leg in legs]
        if firsts[0] is None or firsts[1] is None:
            return None
        tallies = []
        for first, side in zip(firsts, sides, strict=True):
            assert first is not None
            rate = dec(fx.get(self._venues[first.venue].quote, 0.0)) if first.venue in self._venues else ZERO
            tally = LegTally(first.venue, first.symbol, side, rate, first.price)
            for order in orders:
                if order.venue == first.venue:
                    tally.add(order)
            tallies.append(tally)
        return tallies[0], tallies[1]

    def _finish_entry(self, group: str, orders: list[Order], fx: Mapping[str, float]) -> str:
        tallies = self._tallies(orders, ("B", "S"), ("buy", "sell"), fx)
        if tallies is None:
            self._ledger.conclude_group(group, "entry", self._clock.time())
            return f"{group}: incomplete entry (a leg is missing); its fills count as inventory"
        buy, sell = tallies
        asset = buy.symbol.partition("/")[0]
        paid, got = buy.value(Decimal(1)), sell.value(Decimal(1))  # per unit, accounting currency
        spread = float((got / paid - 1) * 100) if paid and got else 0.0
        position = self._trader.conclude(EntryTrade(group, asset, buy, sell, spread, self._clock.time()))
        if position is None:
            return f"{group}: entry ended without a position (bought {buy.net}, sold {sell.net})"
        return f"{group}: entry booked as position {position.position_id} qty {position.qty}"

    def _finish_exit(self, group: str, orders: list[Order], fx: Mapping[str, float]) -> str:
        position_id = next((o.position_id for o in orders if o.position_id), None)
        position = self._state.positions.get(position_id or "")
        tallies = self._tallies(orders, ("S", "B"), ("sell", "buy"), fx)
        if position is None or tallies is None:
            self._ledger.conclude_group(group, "exit", self._clock.time())
            return f"{group}: exit of a position no longer open; its fills count as inventory"
        sell, buy = tallies
        after = self._trader.conclude(ExitTrade(group, position, sell, buy, "RECOVERED", 0.0))
        assert after is not None  # an exit books the position it closes, closed or not
        return f"{group}: exit booked, position {after.position_id} has {after.qty} left"

    # Residuals ----------------------------------------------------------------------------

    def _rebuild_residuals(self, fx: Mapping[str, float]) -> dict[tuple[str, str], Decimal]:
        """Inventory outside positions = what orders filled per venue - what positions hold there."""
        held: dict[tuple[str, str], Decimal] = {}
        for order in self._ledger.orders():
            if order.filled_qty:
                # The coin that moved: a buy whose fee was taken from the coin delivered less.
                key = (order.venue, order.symbol.partition("/")[0])
                held[key] = held.get(key, ZERO) + (order.net_qty if order.side == "buy" else -order.net_qty)
        for position in self._ledger.positions():
            _account_position(held, position)
        book = ResidualBook()
        for (venue, asset), qty in sorted(held.items()):
            if not qty or venue not in self._venues:
                continue
            # Pre-crash cost is not kept per lot; the inventory is valued at today's mid.
            mid = self._mid(venue, asset) or 0.0
            value = -qty * dec(mid) * dec(fx.get(self._venues[venue].quote, 0.0))
            book.add(venue, asset, qty, value)
        self._trader.residuals.items = book.items
        self._state.unhedged = book.quantities()
        if book.items:
            log.warning(
                "inventory outside positions: %s",
                ", ".join(f"{v}:{a} {q}" for (v, a), q in book.quantities().items()),
            )
        return book.quantities()


def _account_position(held: dict[tuple[str, str], Decimal], position: PairPosition) -> None:
    """Take out of `held` what a position holds: long on its buy venue, short on its sell venue."""
    entry = position.entry_qty
    # Inventory arbitrage (exit.mode none) closes without a reverse trade: the entry stays held.
    closed = ZERO if position.exit_reason == "INVENTORY" else position.closed_qty
    buy_key = (position.buy_venue, position.asset)
    sell_key = (position.sell_venue, position.asset)
    # Bought `entry` and sold back `closed` on the buy venue; the mirror on the sell venue.
    held[buy_key] = held.get(buy_key, ZERO) - (entry - closed)
    held[sell_key] = held.get(sell_key, ZERO) + (entry - closed)
