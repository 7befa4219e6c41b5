"""Carries out entry and exit intents: both legs, then retry-or-unwind until the pair is hedged.

The decisions (what to retry, what to unwind) come from the pure planner in engines.hedging;
this class does the I/O around them: ledger rows before each venue call, the calls, the
accounting of what filled, and an alert for every single-leg event with its cost.

The PENDING legs of a tick's entries (or exits), with their sequence numbers and opportunities,
go on disk in one commit before any venue is called. Each pair whose legs come back even then
writes its legs' outcomes and its booking in one transaction that does not wait for the disk
(durable=False; the loop's ledger batch makes the tick's bookings one commit): should a power
cut lose it, the PENDING orders are there and recovery asks the venues again. Uneven legs write
their outcomes first, then each repair order (on disk) before it is sent, then the booking. A
crash anywhere in between leaves orders that recovery looks up by client order id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from arbitrage.clock import Clock
from arbitrage.config import AppConfig
from arbitrage.domain import ids
from arbitrage.domain.book import MarketSnapshot, OrderBook
from arbitrage.domain.decisions import EntryIntent, ExitIntent, LegPlan
from arbitrage.domain.exit_retry import first_failure
from arbitrage.domain.money import ZERO, booked, dec
from arbitrage.domain.orders import Order, OrderCancelled, OrderRequest, apply
from arbitrage.domain.positions import PairPosition
from arbitrage.engines.hedging import LegState, plan_repair
from arbitrage.errors import VenueError
from arbitrage.runtime import failpoints
from arbitrage.runtime.legs import LegTally, ResidualBook
from arbitrage.runtime.order_sender import OrderSender, Placement
from arbitrage.runtime.state import BotState
from arbitrage.store.ledger import Ledger
from arbitrage.venues.base import Venue

log = logging.getLogger("arbitrage.execution")

AlertFn = Callable[..., None]  # (key, text) or (key, text, level); the level defaults to ERROR
BookFn = Callable[[str, str], OrderBook | None]  # (venue, asset) -> a fresh book
PublishFn = Callable[[str, dict[str, Any]], object]  # the event stream for dashboards (Redis)
LegRunner = Callable[[list[Order]], list[Placement]]  # the venue calls of both legs, in turn or at once


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """An entry whose PENDING legs are on disk: next sent, or withdrawn unsent."""

    group: str
    intent: EntryIntent
    buy: Order
    sell: Order
    at: float  # when it was written
    kind: ClassVar[str] = "entry"

    @property
    def legs(self) -> tuple[Order, Order]:
        return self.buy, self.sell


@dataclass(frozen=True, slots=True)
class PendingExit:
    """An exit whose PENDING legs are on disk: next sent, or withdrawn unsent."""

    group: str
    intent: ExitIntent
    sell: Order
    buy: Order
    at: float
    kind: ClassVar[str] = "exit"

    @property
    def legs(self) -> tuple[Order, Order]:
        return self.sell, self.buy


class PairTrader:
    def __init__(
        self,
        config: AppConfig,
        state: BotState,
        ledger: Ledger,
        venues: Mapping[str, Venue],
        sender: OrderSender,
        run_legs: LegRunner,
        fresh_book: BookFn,
        residuals: ResidualBook,
        alert: AlertFn,
        clock: Clock,
        publish: PublishFn | None = None,
    ) -> None:
        self._cfg = config
        self._state = state
        self._ledger = ledger
        self._venues = venues
        self._sender = sender
        self._run_legs = run_legs
        self._fresh_book = fresh_book
        self.residuals = residuals
        self._alert = alert
        self._clock = clock
        self._publish = publish
        self._prefix = config.execution.client_id_prefix
        self._unresolved_since: dict[str, float] = {}

    # Entries -------------------------------------------------------------------------------

    def write_entries(self, intents: Sequence[EntryIntent], tick: int) -> list[PendingEntry]:
        """Write the entries of one tick, all in one commit on disk before any venue is called.

        Each entry's sequence number, opportunity and PENDING legs go in together, so a crash
        never leaves a used sequence number without its orders; one fsync serves them all.
        """
        now = self._clock.time()
        pending: list[PendingEntry] = []
        with self._ledger.transaction():
            for intent in intents:
                group = ids.entry_group(self._prefix, self._ledger.next_sequence("entry"))
                buy = self._order(group, "B", intent.buy, "entry", group)
                sell = self._order(group, "S", intent.sell, "entry", group)
                self._ledger.record_opportunity(group, tick, intent.opportunity, None)
                self._ledger.insert_orders([buy, sell], now)
                pending.append(PendingEntry(group, intent, buy, sell, now))
        failpoints.hit("entry.orders_written")
        return pending

    def send_entry(self, pending: PendingEntry) -> PairPosition | None:
        """Send an entry written by write_entries, hedge what its legs left uneven, book it."""
        intent, group, buy, sell, now = pending.intent, pending.group, pending.buy, pending.sell, pending.at
        opp = intent.opportunity
        log.info(
            "entry %s %s buy %s@%s on %s, sell @%s on %s, net %.3f%% gross %.3f%% fx %s/%s",
            group,
            opp.asset,
            buy.qty,
            buy.price,
            buy.venue,
            sell.price,
            sell.venue,
            opp.net_spread_pct,
            opp.gross_spread_pct,
            opp.buy_fx,
            opp.sell_fx,
        )
        placed = self._run_legs([buy, sell])
        self._state.counters.entries += 1
        buy_tally = LegTally(buy.venue, buy.symbol, "buy", dec(intent.buy.fx), buy.price)
        sell_tally = LegTally(sell.venue, sell.symbol, "sell", dec(intent.sell.fx), sell.price)
        with self._ledger.transaction(durable=False):  # what the venues said: they can say it again
            even = self._settle_legs(((buy, buy_tally), (sell, sell_tally)), placed)
            if even:  # nothing to repair: the legs' outcomes and the booking commit together
                position = self._book_entry(group, opp.asset, buy_tally, sell_tally, opp.net_spread_pct, now)
        if not even:
            return self.conclude_entry(group, opp.asset, buy_tally, sell_tally, opp.net_spread_pct, now)
        self._entry_booked(group, opp.asset, buy_tally, sell_tally, position)
        return position

    def withdraw(self, pending: PendingEntry | PendingExit, why: str) -> None:
        """Close the PENDING legs of a written pair that will not be sent, and its group."""
        now = self._clock.time()
        with self._ledger.transaction(durable=False):  # lost, recovery finds them unknown at the venues
            for order in pending.legs:
                self._ledger.update_order(apply(order, OrderCancelled(f"not sent: {why}")), now)
            self._ledger.conclude_group(pending.group, pending.kind, now)
        log.info("%s %s withdrawn before sending: %s", pending.kind, pending.group, why)

    def conclude_entry(
        self,
        group: str,
        asset: str,
        buy_tally: LegTally,
        sell_tally: LegTally,
        entry_spread_pct: float,
        opened_at: float,
    ) -> PairPosition | None:
        """Hedge what the legs left uneven, then book the group in one transaction.

        Recovery calls this too, with tallies rebuilt from the ledger, for an entry that a crash
        interrupted before it was booked.
        """
        self._repair(group, asset, buy_tally, sell_tally, None)
        with self._ledger.transaction(durable=False):
            position = self._book_entry(group, asset, buy_tally, sell_tally, entry_spread_pct, opened_at)
        self._entry_booked(group, asset, buy_tally, sell_tally, position)
        return position

    def _book_entry(
        self,
        group: str,
        asset: str,
        buy_tally: LegTally,
        sell_tally: LegTally,
        entry_spread_pct: float,
        opened_at: float,
    ) -> PairPosition | None:
        """The entry's ledger rows: the position, hedge events, daily PnL; inside a transaction."""
        hedged = max(min(buy_tally.net, sell_tally.net), ZERO)
        failpoints.hit("entry.before_booking")
        position: PairPosition | None = None
        hedge_cost = self._settle_leftovers(group, asset, (buy_tally, sell_tally), hedged)
        if hedged > 0:
            position = PairPosition(
                position_id=group,
                asset=asset,
                buy_venue=buy_tally.venue,
                sell_venue=sell_tally.venue,
                buy_symbol=buy_tally.symbol,
                sell_symbol=sell_tally.symbol,
                qty=hedged,
                buy_qty=buy_tally.net,
                sell_qty=sell_tally.net,
                entry_cost=booked(buy_tally.value(hedged)),
                entry_proceeds=booked(sell_tally.value(hedged)),
                entry_fees=booked(buy_tally.fee_share(hedged) + sell_tally.fee_share(hedged)),
                entry_spread_pct=entry_spread_pct,
                opened_at=opened_at,
            )
            self._state.counters.trades += 1
            if self._cfg.exit.mode == "none":
                # Inventory arbitrage: the entry spread is the whole trade, no reverse leg.
                position = position.close_without_trade("INVENTORY", opened_at)
            self._save_position(position, position.realized_pnl, trades=1)
        self._book_daily(hedge_cost, ZERO, hedge_cost, trades=0)
        self._ledger.conclude_group(group, "entry", self._clock.time())
        return position

    def _entry_booked(
        self, group: str, asset: str, buy_tally: LegTally, sell_tally: LegTally, position: PairPosition | None
    ) -> None:
        self._refresh_balances(buy_tally.venue, sell_tally.venue)
        self._event(
            "entry",
            group=group,
            asset=asset,
            bought=buy_tally.net,
            sold=sell_tally.net,
            position=position.position_id if position else None,
            hedged=max(min(buy_tally.net, sell_tally.net), ZERO),
        )

    # Exits ---------------------------------------------------------------------------------

    def exit(self, intent: ExitIntent) -> PairPosition | None:
        """Write one exit's PENDING legs, then send them and book what closed (a DUST exit,
        without legs, closes at once)."""
        if intent.sell is None or intent.buy is None:
            return self.close_dust(intent)
        pending = self.write_exits([intent])
        return self.send_exit(pending[0]) if pending else None

    def write_exits(self, intents: Sequence[ExitIntent]) -> list[PendingExit]:
        """Write the exits of one tick in one commit on disk, as write_entries does; intents
        for a position no longer open, or without both legs planned, are left out."""
        now = self._clock.time()
        pending: list[PendingExit] = []
        with self._ledger.transaction():
            for intent in intents:
                position = self._state.positions.get(intent.position_id)
                if position is None or intent.sell is None or intent.buy is None:
                    continue
                pid = position.position_id
                group = ids.exit_group(pid, self._ledger.next_sequence(f"exit:{pid}"))
                sell = self._order(group, "S", intent.sell, "exit", pid)
                buy = self._order(group, "B", intent.buy, "exit", pid)
                self._ledger.insert_orders([sell, buy], now)
                pending.append(PendingExit(group, intent, sell, buy, now))
        if pending:
            failpoints.hit("exit.orders_written")
        return pending

    def send_exit(self, pending: PendingExit) -> PairPosition | None:
        """Send an exit written by write_exits, hedge what its legs left uneven, book it."""
        intent, group, sell, buy = pending.intent, pending.group, pending.sell, pending.buy
        position = self._state.positions.get(intent.position_id)
        if position is None or intent.sell is None or intent.buy is None:
            # Closed since it was written (by an earlier exit of this tick).
            self.withdraw(pending, f"position {intent.position_id} no longer open")
            return None
        log.info(
            "exit %s %s %s qty %s: sell @%s on %s, buy @%s on %s, reverse spread %.3f%%",
            group,
            intent.reason,
            position.asset,
            intent.qty,
            sell.price,
            sell.venue,
            buy.price,
            buy.venue,
            intent.spread_pct,
        )
        try:
            placed = self._run_legs([sell, buy])
        except Exception as err:
            # Nothing came back to book (the loop logs the error): the attempt failed all the same.
            self._exit_failed(position, group, intent.qty, ZERO, f"{type(err).__name__}: {err}")
            raise
        self._state.counters.exits += 1
        if intent.reason == "STOP_LOSS":
            self._state.counters.sl_triggers += 1
        elif intent.reason == "TAKE_PROFIT":
            self._state.counters.tp_triggers += 1
        sell_tally = LegTally(sell.venue, sell.symbol, "sell", dec(intent.sell.fx), sell.price)
        buy_tally = LegTally(buy.venue, buy.symbol, "buy", dec(intent.buy.fx), buy.price)
        reason, spread = intent.reason, intent.spread_pct
        with self._ledger.transaction(durable=False):  # what the venues said: they can say it again
            even = self._settle_legs(((sell, sell_tally), (buy, buy_tally)), placed)
            if even:  # nothing to repair: the legs' outcomes and the booking commit together
                after = self._book_exit(group, position, sell_tally, buy_tally, reason, spread)
        if not even:
            return self.conclude_exit(group, position, sell_tally, buy_tally, reason, spread)
        self._exit_booked(group, position, after, sell_tally, buy_tally, reason)
        return after

    def conclude_exit(
        self,
        group: str,
        position: PairPosition,
        sell_tally: LegTally,
        buy_tally: LegTally,
        reason: str,
        spread_pct: float,
    ) -> PairPosition:
        """Hedge what the exit legs left uneven, then book the closed part in one transaction."""
        self._repair(group, position.asset, sell_tally, buy_tally, position.position_id)
        with self._ledger.transaction(durable=False):
            after = self._book_exit(group, position, sell_tally, buy_tally, reason, spread_pct)
        self._exit_booked(group, position, after, sell_tally, buy_tally, reason)
        return after

    def _book_exit(
        self,
        group: str,
        position: PairPosition,
        sell_tally: LegTally,
        buy_tally: LegTally,
        reason: str,
        spread_pct: float,
    ) -> PairPosition:
        """The exit's ledger rows: the closed part, hedge events, daily PnL; inside a transaction."""
        closed = max(min(sell_tally.net, buy_tally.net, position.qty), ZERO)
        failpoints.hit("exit.before_booking")
        hedge_cost = self._settle_leftovers(group, position.asset, (sell_tally, buy_tally), closed)
        if closed > 0:
            before = position.realized_pnl
            position = position.close_part(
                closed,
                proceeds=sell_tally.value(closed),
                cost=buy_tally.value(closed),
                fees=sell_tally.fee_share(closed) + buy_tally.fee_share(closed),
                spread_pct=spread_pct,
                reason=reason,
                ts=self._clock.time(),
            )
            self._save_position(position, position.realized_pnl - before, trades=0)
        self._book_daily(hedge_cost, ZERO, hedge_cost, trades=0)
        self._ledger.conclude_group(group, "exit", self._clock.time())
        return position

    def _exit_booked(
        self,
        group: str,
        before: PairPosition,
        after: PairPosition,
        sell_tally: LegTally,
        buy_tally: LegTally,
        reason: str,
    ) -> None:
        self._refresh_balances(sell_tally.venue, buy_tally.venue)
        closed = before.qty - after.qty
        # What the legs were sent for: closing less than that is a failed attempt, backed off.
        sent = min((t.orders[0].qty for t in (sell_tally, buy_tally) if t.orders), default=ZERO)
        if closed < sent:
            self._exit_failed(after, group, sent, closed, _legs_outcome(sell_tally, buy_tally))
        else:
            self._exit_done(after, f"exit {group} closed {closed}")
        self._event(
            "exit",
            group=group,
            position=after.position_id,
            reason=reason,
            closed=closed,
            left=after.qty,
            realized_pnl=after.realized_pnl,
        )
        if closed > 0:
            log.info(
                "position %s %s: closed %s, %s left, realized %s %s",
                after.position_id,
                reason,
                closed,
                after.qty,
                after.realized_pnl.quantize(Decimal("1")),
                self._cfg.accounting_currency,
            )

    # Failing exits and dust ----------------------------------------------------------------

    def _exit_failed(
        self, position: PairPosition, group: str, sent: Decimal, closed: Decimal, why: str
    ) -> None:
        """Count a failed exit attempt: the exit engines back off; alert on the first one only."""
        pid, now = position.position_id, self._clock.time()
        before = self._state.exit_retries.get(pid)
        retry = first_failure(pid, now, why) if before is None else before.after(now, why)
        self._state.exit_retries[pid] = retry
        ex = self._cfg.exit
        wait = retry.retry_at(ex.retry_backoff_s, ex.retry_backoff_max_s) - now
        log.warning(
            "exit %s of %s failed (attempt %d): closed %s of %s; %s; next attempt in %.1fs at the earliest",
            group, pid, retry.failures, closed, sent, why, wait,
        )  # fmt: skip
        if before is None:
            self._alert(
                f"exit-failed:{pid}",
                f"Exit of {pid} ({position.asset}, {position.qty} open) failed: closed {closed} of {sent}; "
                f"{why}. Retrying with backoff from {ex.retry_backoff_s:g}s up to "
                f"{ex.retry_backoff_max_s:g}s ({ex.stoploss_retry_backoff_max_s:g}s for a stop loss); "
                "no further alert until it closes.",
            )

    def _exit_done(self, position: PairPosition, what: str) -> None:
        """An exit attempt that closed what it was sent for ends the backoff; say so if it had failed."""
        retry = self._state.exit_retries.pop(position.position_id, None)
        if retry is None:
            return
        state = "closed" if position.qty <= 0 else f"{position.qty} still open"
        text = (
            f"Exit of {position.position_id} ({position.asset}) recovered after {retry.failures} failed "
            f"attempt(s) over {self._clock.time() - retry.first_failed_at:.0f}s: {what}, position {state}"
        )
        log.warning("%s", text)
        self._alert(f"exit-recovered:{position.position_id}", text, "INFO")

    def close_dust(self, intent: ExitIntent) -> PairPosition | None:
        """Close a position's open qty without a trade (a DUST exit): it is below what the venues
        accept, so it moves to the residual book, long on the buy venue and short on the sell venue
        (the asset's net is unchanged). Its entry spread is realized with the position; the
        inventory enters the residual book at no value, so whatever it fetches later is realized then.
        """
        position = self._state.positions.get(intent.position_id)
        if position is None:
            return None
        qty = min(intent.qty, position.qty)
        now = self._clock.time()
        with self._ledger.transaction(durable=False):  # lost, the next tick closes it again
            realized_before = position.realized_pnl
            after = position.close_part(qty, ZERO, ZERO, ZERO, intent.spread_pct, intent.reason, now)
            self._save_position(after, after.realized_pnl - realized_before, trades=0)
            netted = ZERO
            for venue, signed in ((position.buy_venue, qty), (position.sell_venue, -qty)):
                realized = booked(self.residuals.add(venue, position.asset, signed, ZERO))
                netted += realized
                self._record_hedge(
                    position.position_id, position.asset, venue, "residual", qty, realized,
                    f"dust of {position.position_id}: {signed} below what the venues trade, "
                    f"moved to inventory outside positions",
                )  # fmt: skip
            self._book_daily(netted, ZERO, netted, trades=0)
        self._state.unhedged = self.residuals.quantities()
        log.info(
            "position %s %s: %s %s closed as %s into the residual book, realized %s %s",
            after.position_id, intent.reason, qty, position.asset, "dust",
            after.realized_pnl.quantize(Decimal("1")), self._cfg.accounting_currency,
        )  # fmt: skip
        self._event(
            "exit", group=position.position_id, position=position.position_id, reason=intent.reason,
            closed=qty, left=after.qty, realized_pnl=after.realized_pnl,
        )  # fmt: skip
        self._exit_done(after, f"{qty} closed as dust into the residual book")
        return after

    # Orders whose outcome was unknown -----------------------------------------------------

    def resolve_unresolved(self, snapshot: MarketSnapshot) -> None:
        """Ask again about orders whose create call had no answer; late fills become residuals."""
        for cid, order in list(self._sender.unresolved.items()):
            fx = snapshot.fx.get(self._venues[order.venue].quote, 0.0)
            since = self._unresolved_since.setdefault(cid, self._clock.monotonic())
            after = self._sender.resolve(order, fx)
            if cid in self._sender.unresolved:
                if self._clock.monotonic() - since > self._cfg.execution.leg_timeout_s * 6:
                    self._alert(
                        f"unresolved:{cid}", f"Order {cid} on {order.venue} still has no known outcome"
                    )
                continue
            self._unresolved_since.pop(cid, None)
            if after.filled_qty > 0:
                detail = f"late fill of {cid} ({after.state.value}) parked as unhedged inventory"
                self._park_fills(after, fx, detail)

    # Residual inventory --------------------------------------------------------------------

    def hedge_residuals(self, snapshot: MarketSnapshot) -> None:
        """Unwind an asset's unhedged inventory when its net exceeds the bound."""
        for asset in {a for (_, a) in self.residuals.items}:
            limit = dec(self._cfg.execution.unhedged_limit(asset))
            net = self.residuals.net(asset)
            if abs(net) <= limit:
                continue
            venues = sorted(
                (v for (v, a) in self.residuals.items if a == asset),
                key=lambda v: abs(self.residuals.items[(v, asset)].qty),
                reverse=True,
            )
            # The venue holding the most unwinds its own part; when no part alone is tradable
            # (each below its venue's step or minimum, as the parts a step of a fee taken in the
            # coin leaves), the asset's net is unwound on whichever venue takes it.
            tries = [(venues[0], self.residuals.items[(venues[0], asset)].qty)] + [(v, net) for v in venues]
            for venue, qty in tries:
                if self._unwind_residual(venue, asset, qty, snapshot):
                    break
        self._state.unhedged = self.residuals.quantities()

    def _unwind_residual(self, venue: str, asset: str, signed_qty: Decimal, snapshot: MarketSnapshot) -> bool:
        """Send the order that takes `signed_qty` out of the market on `venue`; False if it cannot."""
        side = "sell" if signed_qty > 0 else "buy"
        book = self._fresh_book(venue, asset)
        symbol = self._cfg.venue_symbol(venue, asset)
        rules = self._state.rules.get((venue, symbol))
        if book is None or rules is None:
            return False
        top = book.best_bid if side == "sell" else book.best_ask
        if top is None:
            return False
        slip = dec(self._cfg.execution.unwind_slippage_pct) / 100
        price = dec(top) * (1 - slip if side == "sell" else 1 + slip)
        qty = rules.round_qty(abs(signed_qty))
        if side == "buy":
            qty = rules.buy_qty_for(qty)  # what arrives must cover it, the fee taken from the coin
        price = rules.round_price(price, side)
        if rules.check(qty, price) is not None:
            return False
        fx = snapshot.fx.get(self._venues[venue].quote, 0.0)
        with self._ledger.transaction():
            group = f"{self._prefix}R{self._ledger.next_sequence('residual'):07d}"
            cid = ids.client_order_id(group, side[0].upper())
            request = OrderRequest(cid, venue, symbol, side, qty, price, "unwind", None, group)
            order = Order.from_request(request, group)
            self._ledger.insert_orders([order], self._clock.time())
        failpoints.hit("residual.orders_written")
        done = self._sender.send(order, fx)
        self._park_fills(done, fx, f"unwound residual {side} {done.filled_qty}", conclude=True)
        return True

    def _park_fills(self, order: Order, fx: float, detail: str, conclude: bool = False) -> None:
        """Book an order's fills as inventory outside any position (netted against what is there)."""
        asset = order.symbol.partition("/")[0]
        with self._ledger.transaction(durable=False):
            if order.filled_qty > 0:
                # The coin that moved (a fee taken from the coin bought arrived short), valued at
                # the fill price; with the fee's quote value below, the cash that changed hands.
                cash = order.net_qty * order.avg_fill_price * dec(fx)
                signed = order.net_qty if order.side == "buy" else -order.net_qty
                value = (-cash if order.side == "buy" else cash) - order.fee * dec(fx)
                realized = booked(self.residuals.add(order.venue, asset, signed, value))
                self._record_hedge(
                    ids.group_of(order.client_order_id), asset, order.venue, "residual", order.filled_qty,
                    realized, detail,
                )  # fmt: skip
                self._book_daily(realized, ZERO, realized, trades=0)
            if conclude:
                group = ids.group_of(order.client_order_id)
                self._ledger.conclude_group(group, "residual", self._clock.time())
        self._state.unhedged = self.residuals.quantities()
        if order.filled_qty > 0:
            self._refresh_balances(order.venue)

    # Internals -----------------------------------------------------------------------------

    def _order(self, group: str, leg: str, plan: LegPlan, purpose: str, position_id: str | None) -> Order:
        req = OrderRequest(
            client_order_id=ids.client_order_id(group, leg),
            venue=plan.venue,
            symbol=plan.symbol,
            side=plan.side,
            qty=plan.qty,
            price=plan.price,
            purpose=purpose,
            position_id=position_id,
            group=group,
        )
        return Order.from_request(req, group)

    def _settle_legs(self, legs: tuple[tuple[Order, LegTally], ...], placed: list[Placement]) -> bool:
        """Write what the venues said of each leg and add it to the leg's tally; True when the
        legs came back even (nothing to repair). Runs inside the caller's transaction."""
        for (order, tally), placement in zip(legs, placed, strict=True):
            tally.add(self._sender.settle(order, placement, float(tally.fx)))
        return len({tally.net for _, tally in legs}) == 1

    def _repair(
        self, group: str, asset: str, first: LegTally, second: LegTally, position_id: str | None
    ) -> None:
        """Retry the missing quantity, then unwind the excess, as the planner decides."""
        # Recovery rebuilds the tallies with the repair orders sent before a crash: they count
        # against the budget, and the next order's id (numbered by attempt) must be a new one.
        attempt = sum(1 for t in (first, second) for o in t.orders if o.purpose in ("retry", "unwind"))
        while True:
            legs = (first, second)
            books = {t.venue: b for t in legs if (b := self._fresh_book(t.venue, asset)) is not None}
            rules = {
                t.venue: r for t in legs if (r := self._state.rules.get((t.venue, t.symbol))) is not None
            }
            repair = plan_repair(
                asset=asset,
                first=LegState(first.venue, first.symbol, first.side, first.planned_price, first.net),
                second=LegState(second.venue, second.symbol, second.side, second.planned_price, second.net),
                books=books,
                rules=rules,
                fx={t.venue: float(t.fx) for t in legs},
                attempt=attempt,
                config=self._cfg.execution,
            )
            if repair is None:
                return
            attempt += 1
            tally = first if repair.leg.venue == first.venue else second
            kind = "R" if repair.purpose == "retry" else "U"
            order = self._order(
                group, f"{kind}{repair.leg.side[0].upper()}{attempt}", repair.leg, repair.purpose, position_id
            )
            self._ledger.insert_orders([order], self._clock.time())
            failpoints.hit("repair.order_written")
            done = self._sender.send(order, float(tally.fx))
            tally.add(done)
            self._state.counters.hedge_events += 1
            if repair.purpose == "retry" and done.filled_qty > 0:
                # A retry's price is part of the position's entry price; it books no cost of its own.
                slip = (done.avg_fill_price - tally.planned_price) * done.filled_qty * tally.fx
                self._record_hedge(
                    group,
                    asset,
                    done.venue,
                    "retry",
                    done.filled_qty,
                    ZERO,
                    f"retried {done.side} {done.filled_qty} at {done.avg_fill_price} "
                    f"(planned {tally.planned_price}, {abs(slip):.0f} in the entry price)",
                )
            self._alert(
                f"single-leg:{group}",
                f"Single-leg fill on {group} ({asset}): {repair.purpose} {done.side} "
                f"{done.filled_qty}/{done.qty} on {done.venue} ({done.state.value})",
            )
            failpoints.hit("repair.sent")  # between this repair order and the next (retry, then unwind)

    def _settle_leftovers(
        self, group: str, asset: str, tallies: tuple[LegTally, LegTally], hedged: Decimal
    ) -> Decimal:
        """Book each leg's unwind result and park what is left unhedged; returns the total cost booked."""
        total = ZERO
        for tally in tallies:
            result = booked(tally.unwind_result())
            if tally.back_qty:
                self._record_hedge(
                    group,
                    asset,
                    tally.venue,
                    "unwind",
                    tally.back_qty,
                    result,
                    f"unwound {tally.back_qty} of the {tally.side} leg",
                )
                total += result
            qty, value = tally.leftover(hedged)
            if qty:
                realized = booked(self.residuals.add(tally.venue, asset, qty, value))
                self._record_hedge(
                    group,
                    asset,
                    tally.venue,
                    "residual",
                    abs(qty),
                    realized,
                    f"{qty} left unhedged on {tally.venue} "
                    f"(bound {self._cfg.execution.unhedged_limit(asset)})",
                )
                total += realized
                if abs(self.residuals.net(asset)) > dec(self._cfg.execution.unhedged_limit(asset)):
                    self._alert(
                        f"unhedged:{asset}", f"{asset} unhedged {self.residuals.net(asset)} after {group}"
                    )
        self._state.unhedged = self.residuals.quantities()
        return total

    def _event(self, event: str, **payload: Any) -> None:
        if self._publish is not None:
            self._publish(event, {k: str(v) if isinstance(v, Decimal) else v for k, v in payload.items()})

    def _record_hedge(
        self, group: str, asset: str, venue: str, kind: str, qty: Decimal, cost: Decimal, detail: str
    ) -> None:
        self._ledger.record_hedge_event(group, asset, venue, kind, qty, cost, detail, self._clock.time())
        self._event(
            "hedge", group=group, asset=asset, venue=venue, kind=kind, qty=qty, result=cost, detail=detail
        )
        # A residual is bookkeeping (a sliver booked, or dust moved out of a position): the unwind
        # that follows past the bound is the event an operator must see.
        level = logging.INFO if kind == "residual" else logging.WARNING
        log.log(level, "hedge %s %s %s %s qty=%s result=%s: %s", kind, group, asset, venue, qty, cost, detail)

    def _save_position(self, position: PairPosition, realized_delta: Decimal, trades: int) -> None:
        self._ledger.save_position(position, self._clock.time())
        self._state.put_position(position)
        fees = position.entry_fees if trades else ZERO
        self._book_daily(realized_delta, fees, ZERO, trades)

    def _book_daily(self, realized: Decimal, fees: Decimal, hedge_cost: Decimal, trades: int) -> None:
        if not realized and not fees and not hedge_cost and not trades:
            return
        self._state.book_realized(realized)
        self._ledger.add_daily_pnl(self._state.day, realized, fees, hedge_cost, trades, self._clock.time())

    def _refresh_balances(self, *venues: str) -> None:
        # Runs after the group is booked: a venue that cannot answer now (breaker open, a
        # Retry-After pause) must not turn a booked trade into a failed one, nor, from the
        # residual paths that run outside any engine, stop the loop. The next refresh catches up.
        for name in dict.fromkeys(venues):
            try:
                self._state.balances[name] = self._venues[name].balances()
            except VenueError as err:
                log.warning("balances of %s not refreshed (last known kept): %s", name, err)


def _legs_outcome(*tallies: LegTally) -> str:
    """How each leg of an exit ended, for the log and the alert: "upbit buy REJECTED (insufficient ...)"."""
    parts = []
    for tally in tallies:
        if not tally.orders:
            continue
        leg = tally.orders[0]
        text = f"{leg.venue} {leg.side} {leg.state.value} {leg.filled_qty}/{leg.qty}"
        parts.append(f"{text} ({leg.reason})" if leg.reason else text)
    return ", ".join(parts)
