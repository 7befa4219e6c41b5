"""Sends orders through their venues, with the ledger written before and after the calls.

An order is written PENDING (committed) before its venue is called, so a crash at any point
leaves a record that recovery looks up by client order id. Sending is two steps: `place` is the
venue I/O alone (no ledger writes, so both legs of a pair can go out at once from two threads),
and `settle` writes what came back: the SUBMITTED transition, the fills, the final state. The
pair trader settles both legs in one transaction, with the pair's booking when nothing is left
to repair.
A create call with an unknown outcome is never resent: the order is looked up, and stays
SUBMITTED (unresolved) until the venue answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal

from arbitrage.clock import Clock
from arbitrage.domain.orders import (
    Order,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderReport,
    OrderRequest,
    OrderState,
    OrderSubmitted,
    apply,
    events_from_report,
)
from arbitrage.errors import InvalidTransition, UnknownOrderOutcome, VenueError
from arbitrage.runtime import failpoints
from arbitrage.store.ledger import Ledger
from arbitrage.venues.base import Venue

log = logging.getLogger("arbitrage.execution")

AlertFn = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class Placement:
    """What the venue said to one create call: its report, a refusal, or nothing known yet."""

    report: OrderReport | None = None
    refused: str | None = None  # refused before it could be placed (the error's text)


def request_of(order: Order) -> OrderRequest:
    return OrderRequest(
        client_order_id=order.client_order_id,
        venue=order.venue,
        symbol=order.symbol,
        side=order.side,
        qty=order.qty,
        price=order.price,
        purpose=order.purpose,
        position_id=order.position_id,
        group=order.opportunity_id or "",
    )


class OrderSender:
    def __init__(
        self,
        venues: Mapping[str, Venue],
        ledger: Ledger,
        clock: Clock,
        alert: AlertFn,
        lookup_delays_s: tuple[float, ...] = (0.05, 0.2, 0.5),
    ) -> None:
        self._venues = venues
        self._ledger = ledger
        self._clock = clock
        self._alert = alert
        self._lookup_delays_s = lookup_delays_s
        self.unresolved: dict[str, Order] = {}  # client order id -> order with unknown outcome

    def send(self, order: Order, fx: float) -> Order:
        """Place `order` (already written PENDING) and return it as the venue left it, written."""
        return self.settle(order, self.place(order), fx)

    def place(self, order: Order) -> Placement:
        """Call the venue for `order`; no ledger writes, so legs may be placed from threads at once."""
        venue = self._venues[order.venue]
        failpoints.hit("order.sending")
        try:
            report = venue.submit(request_of(order))
        except UnknownOrderOutcome as err:
            log.warning(
                "order %s: outcome unknown (%s); looking it up, never resending", order.client_order_id, err
            )
            return Placement(self._lookup(order, self._lookup_delays_s))
        except VenueError as err:
            # Refused before it could be placed (permanent error, or a rate limit on create).
            log.warning("order %s refused: %s", order.client_order_id, err)
            return Placement(refused=str(err))
        failpoints.hit("order.sent")
        return Placement(report)

    def settle(self, order: Order, placement: Placement, fx: float) -> Order:
        """Write what `place` learned; an order with no known outcome is SUBMITTED and unresolved."""
        if placement.refused is not None:
            order = self._transition(order, OrderRejected(placement.refused))
        elif placement.report is None:
            if order.state is OrderState.PENDING:
                order = self._transition(order, OrderSubmitted())
            self.unresolved[order.client_order_id] = order
        else:
            self.unresolved.pop(order.client_order_id, None)
            order = self.apply_report(order, placement.report, fx)
        failpoints.hit("order.applied")
        return order

    def resolve(self, order: Order, fx: float, delays: tuple[float, ...] = (0.0,)) -> Order:
        """Look an order up by client order id until the venue knows it; unresolved if it never answers."""
        return self.settle(order, Placement(self._lookup(order, delays)), fx)

    def _lookup(self, order: Order, delays: tuple[float, ...]) -> OrderReport | None:
        venue = self._venues[order.venue]
        for delay in delays:
            self._clock.sleep(delay)
            try:
                report = venue.fetch_order(order.symbol, order.client_order_id)
            except VenueError as err:
                log.warning("lookup of %s failed: %s", order.client_order_id, err)
                if venue.degraded:
                    break  # the next lookups would be refused too: ask again next tick
                continue
            if report is not None:
                return report
        return None

    def apply_report(self, order: Order, report: OrderReport, fx: float) -> Order:
        """Apply what the venue reports, recording each new fill; the order row and fills commit together."""
        now = self._clock.time()
        # Not waiting for the disk: should a power cut lose this, the order is still in the
        # ledger (written before it was sent) and recovery asks the venue again.
        with self._ledger.transaction(durable=False):
            for event in events_from_report(order, report):
                try:
                    after = apply(order, event)
                except InvalidTransition as err:
                    log.error("refused an invalid transition: %s", err)
                    self._alert(
                        f"invalid-transition:{order.client_order_id}",
                        f"Refused invalid order transition: {err}",
                    )
                    break
                if isinstance(event, OrderFilled):
                    self._record_fill(order, event, after.filled_qty, fx, now)
                order = after
            if report.venue_order_id and not order.venue_order_id:
                order = replace(order, venue_order_id=report.venue_order_id)
            self._ledger.update_order(order, now)
        log.info(
            "order %s %s %s %s %s@%s -> %s filled=%s avg=%s fee=%s%s%s",
            order.client_order_id,
            order.purpose,
            order.venue,
            order.side,
            order.qty,
            order.price,
            order.state.value,
            order.filled_qty,
            order.avg_fill_price,
            order.fee,
            f" (of it {order.fee_base} in the coin, {order.net_qty} moved)" if order.fee_base else "",
            f" ({order.reason})" if order.reason else "",
        )
        return order

    def _transition(self, order: Order, event: OrderEvent) -> Order:
        order = apply(order, event)
        self._ledger.update_order(order, self._clock.time())
        return order

    def _record_fill(
        self, order: Order, fill: OrderFilled, cumulative: Decimal, fx: float, now: float
    ) -> None:
        # The cumulative filled quantity names the fill, so re-applying a report never records it twice.
        # A fee taken from the coin itself is written in the coin (the order row keeps its quote value).
        base, _, quote = order.symbol.partition("/")
        fee, currency = (fill.fee_base, base) if fill.fee_base else (fill.fee, quote)
        self._ledger.record_fill(
            order.client_order_id,
            order.venue,
            order.symbol,
            order.side,
            fill.qty,
            fill.price,
            fee,
            currency,
            fx,
            now,
            trade_id=fill.trade_id or f"cum:{cumulative}",
        )
