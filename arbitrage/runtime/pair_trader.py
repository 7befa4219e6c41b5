"""Carries out entry and exit intents: both legs, then retry-or-unwind until the pair is hedged.

Entries and exits take one path (their kinds in runtime.pair_kinds say what differs). The
decisions (what to retry, what to unwind) come from the pure planner in engines.hedging; this
class does the I/O around them: ledger rows before each venue call, the calls, the accounting of
what filled, and an alert for every single-leg event with its cost. What is left unhedged goes to
the residual hedger.

The PENDING legs of a tick's entries (or exits), with their sequence numbers and opportunities,
go on disk in one commit before any venue is called. Each pair whose legs come back even then
writes its legs' outcomes and its booking in one transaction that does not wait for the disk
(durable=False; the loop's ledger batch makes the tick's bookings one commit): should a power
cut lose it, the PENDING orders are there and recovery asks the venues again. Uneven legs write
their outcomes first, then each repair order (on disk) before it is sent, then the booking. A
crash anywhere in between leaves orders that recovery looks up by client order id (see
docs/ARCHITECTURE.md, The ledger's write order).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from arbitrage.config import ExecutionConfig
from arbitrage.domain import ids
from arbitrage.domain.book import MarketSnapshot, OrderBook
from arbitrage.domain.decisions import ExitIntent, LegPlan
from arbitrage.domain.legs import LegTally, ResidualBook
from arbitrage.domain.money import ZERO, booked
from arbitrage.domain.orders import Order, OrderCancelled, OrderRequest, apply
from arbitrage.domain.positions import PairPosition
from arbitrage.engines.hedging import LegState, plan_repair, repair_ruled_out
from arbitrage.runtime import failpoints
from arbitrage.runtime.bookkeeper import Bookkeeper
from arbitrage.runtime.order_sender import OrderSender, Placement
from arbitrage.runtime.pair_kinds import EXITS, IntentT, PairKind, PairTrade, WrittenPair
from arbitrage.runtime.residual_hedger import ResidualHedger
from arbitrage.venues.base import Venue

log = logging.getLogger("arbitrage.execution")

BookFn = Callable[[str, str], OrderBook | None]  # (venue, asset) -> a fresh book
LegRunner = Callable[[list[Order]], list[Placement]]  # the venue calls of both legs, in turn or at once


class PairTrader:
    def __init__(
        self,
        execution: ExecutionConfig,
        books: Bookkeeper,
        hedger: ResidualHedger,
        venues: Mapping[str, Venue],
        sender: OrderSender,
        run_legs: LegRunner,
        fresh_book: BookFn,
    ) -> None:
        self._execution = execution
        self._books = books
        self._state = books.state
        self._ledger = books.ledger
        self._clock = books.clock
        self._alert = books.alert
        self.hedger = hedger
        self._venues = venues
        self._sender = sender
        self._run_legs = run_legs
        self._fresh_book = fresh_book
        self._prefix = execution.client_id_prefix
        self._unresolved_since: dict[str, float] = {}

    @property
    def residuals(self) -> ResidualBook:
        """The inventory outside positions (the residual hedger's book)."""
        return self.hedger.residuals

    @residuals.setter
    def residuals(self, book: ResidualBook) -> None:
        self.hedger.residuals = book

    # The pair path -------------------------------------------------------------------------

    def write(
        self, kind: PairKind[IntentT], intents: Sequence[IntentT], tick: int = 0
    ) -> list[WrittenPair[IntentT]]:
        """Write the pairs of one tick, all in one commit on disk before any venue is called.

        Each pair's sequence number (an entry's opportunity too) and PENDING legs go in together,
        so a crash never leaves a used sequence number without its orders; one fsync serves them
        all. Intents the kind leaves out (an exit of a position no longer open) are not written.
        """
        now = self._clock.time()
        written: list[WrittenPair[IntentT]] = []
        with self._ledger.transaction():
            for intent in intents:
                opening = kind.open(self._ledger, self._prefix, intent, tick, self._state)
                if opening is None:
                    continue
                first, second = (
                    _leg_order(opening.group, plan.side[0].upper(), plan, kind.name, opening.position_id)
                    for plan in opening.plans
                )
                self._ledger.insert_orders([first, second], now)
                written.append(WrittenPair(kind, opening.group, intent, (first, second), opening.plans, now))
        if written:
            failpoints.hit(f"{kind.name}.orders_written")
        return written

    def send(self, written: WrittenPair[IntentT]) -> PairPosition | None:
        """Send a pair written by `write`, hedge what its legs left uneven, book it."""
        why = written.kind.gone(self._state, written.intent)
        if why is not None:
            self.withdraw(written, why)
            return None
        trade = written.kind.start(written, self._state)
        try:
            placed = self._run_legs(list(written.legs))
        except Exception as err:
            trade.not_sent(self._books, err)
            raise
        written.kind.count(self._state.counters, written.intent)
        with self._ledger.transaction(durable=False):  # what the venues said: they can say it again
            even = self._settle_legs(tuple(zip(written.legs, trade.legs, strict=True)), placed)
            if even:  # nothing to repair: the legs' outcomes and the booking commit together
                after = self._book(trade)
        if not even:
            return self.conclude(trade)
        self._books.refresh_balances(trade.first.venue, trade.second.venue)
        trade.booked(self._books, after)
        return after

    def withdraw(self, written: WrittenPair[IntentT], why: str) -> None:
        """Close the PENDING legs of a written pair that will not be sent, and its group."""
        now = self._clock.time()
        with self._ledger.transaction(durable=False):  # lost, recovery finds them unknown at the venues
            for order in written.legs:
                self._ledger.update_order(apply(order, OrderCancelled(f"not sent: {why}")), now)
            self._ledger.conclude_group(written.group, written.kind.name, now)
        log.info("%s %s withdrawn before sending: %s", written.kind.name, written.group, why)

    def conclude(self, trade: PairTrade) -> PairPosition | None:
        """Hedge what the legs left uneven, then book the group in one transaction.

        Recovery calls this too, with tallies rebuilt from the ledger, for a pair that a crash
        interrupted before it was booked.
        """
        self._repair(trade.group, trade.asset, trade.first, trade.second, trade.repair_position)
        with self._ledger.transaction(durable=False):
            after = self._book(trade)
        self._books.refresh_balances(trade.first.venue, trade.second.venue)
        trade.booked(self._books, after)
        return after

    def _book(self, trade: PairTrade) -> PairPosition | None:
        """The pair's ledger rows: its position, hedge events, daily PnL; inside a transaction."""
        matched = trade.matched()
        failpoints.hit(f"{trade.kind}.before_booking")
        hedge_cost = self._settle_leftovers(trade.group, trade.asset, trade.legs, matched)
        after = trade.book(self._books, matched)
        self._books.book_daily(hedge_cost, ZERO, hedge_cost, trades=0)
        self._ledger.conclude_group(trade.group, trade.kind, self._clock.time())
        return after

    def exit(self, intent: ExitIntent) -> PairPosition | None:
        """Write one exit's PENDING legs, then send them and book what closed (a DUST exit,
        without legs, closes at once)."""
        if intent.sell is None or intent.buy is None:
            return self.hedger.close_dust(intent)
        written = self.write(EXITS, [intent])
        return self.send(written[0]) if written else None

    # Orders whose outcome was unknown -----------------------------------------------------

    def resolve_unresolved(self, snapshot: MarketSnapshot) -> None:
        """Ask again about orders whose create call had no answer; late fills become residuals."""
        for cid, order in list(self._sender.unresolved.items()):
            fx = snapshot.fx.get(self._venues[order.venue].quote, 0.0)
            since = self._unresolved_since.setdefault(cid, self._clock.monotonic())
            after = self._sender.resolve(order, fx)
            if cid in self._sender.unresolved:
                if self._clock.monotonic() - since > self._execution.leg_timeout_s * 6:
                    self._alert(
                        f"unresolved:{cid}", f"Order {cid} on {order.venue} still has no known outcome"
                    )
                continue
            self._unresolved_since.pop(cid, None)
            if after.filled_qty > 0:
                detail = f"late fill of {cid} ({after.state.value}) parked as unhedged inventory"
                self.hedger.park_fills(after, fx, detail)

    # Internals -----------------------------------------------------------------------------

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
            rules = {
                t.venue: r for t in legs if (r := self._state.rules.get((t.venue, t.symbol))) is not None
            }
            one, other = (LegState(t.venue, t.symbol, t.side, t.planned_price, t.net) for t in legs)
            if repair_ruled_out(one, other, rules, attempt, self._execution):
                return
            books = {t.venue: b for t in legs if (b := self._fresh_book(t.venue, asset)) is not None}
            repair = plan_repair(
                asset=asset,
                first=one,
                second=other,
                books=books,
                rules=rules,
                fx={t.venue: float(t.fx) for t in legs},
                attempt=attempt,
                config=self._execution,
            )
            if repair is None:
                return
            attempt += 1
            tally = first if repair.leg.venue == first.venue else second
            kind = "R" if repair.purpose == "retry" else "U"
            order = _leg_order(
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
                self._books.record_hedge(
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
                self._books.record_hedge(
                    group,
                    asset,
                    tally.venue,
                    "unwind",
                    tally.back_qty,
                    result,
                    f"unwound {tally.back_qty} of the {tally.side} leg",
                )
                total += result
            total += self.hedger.park_leftover(group, asset, tally, hedged)
        self._state.unhedged = self.residuals.quantities()
        return total


def _leg_order(group: str, leg: str, plan: LegPlan, purpose: str, position_id: str | None) -> Order:
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
