"""Sends one order through its venue, with the ledger written before and after the call.

The order is written SUBMITTED before the venue is called, so a crash at any point leaves a
record that recovery can look up by client order id. A create call with an unknown outcome is
never resent: the order is looked up, and stays SUBMITTED (unresolved) until the venue answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal

from arbitrage.clock import Clock
from arbitrage.domain.orders import (
    Order,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderReport,
    OrderRequest,
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
        """Place `order` (already written PENDING) and return it as the venue left it."""
        venue = self._venues[order.venue]
        order = self._transition(order, OrderSubmitted(), fx)
        failpoints.hit("order.submitted_written")
        try:
            report = venue.submit(request_of(order))
        except UnknownOrderOutcome as err:
            log.warning(
                "order %s: outcome unknown (%s); looking it up, never resending", order.client_order_id, err
            )
            return self.resolve(order, fx, self._lookup_delays_s)
        except VenueError as err:
            # Refused before it could be placed (permanent error, or a rate limit on create).
            log.warning("order %s refused: %s", order.client_order_id, err)
            return self._transition(order, OrderRejected(str(err)), fx)
        failpoints.hit("order.sent")
        order = self.apply_report(order, report, fx)
        failpoints.hit("order.applied")
        return order

    def resolve(self, order: Order, fx: float, delays: tuple[float, ...] = (0.0,)) -> Order:
        """Look an order up by client order id until the venue knows it; unresolved if it never answers."""
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
                self.unresolved.pop(order.client_order_id, None)
                return self.apply_report(order, report, fx)
        self.unresolved[order.client_order_id] = order
        return order

    def apply_report(self, order: Order, report: OrderReport, fx: float) -> Order:
        """Apply what the venue reports, recording each new fill; the order row and fills commit together."""
        now = self._clock.time()
        with self._ledger.transaction():
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
            "order %s %s %s %s %s@%s -> %s filled=%s avg=%s fee=%s%s",
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
            f" ({order.reason})" if order.reason else "",
        )
        return order

    def _transition(self, order: Order, event: OrderEvent, fx: float) -> Order:
        order = apply(order, event)
        self._ledger.update_order(order, self._clock.time())
        return order

    def _record_fill(
        self, order: Order, fill: OrderFilled, cumulative: Decimal, fx: float, now: float
    ) -> None:
        # The cumulative filled quantity names the fill, so re-applying a report never records it twice.
        self._ledger.record_fill(
            order.client_order_id,
            order.venue,
            order.symbol,
            order.side,
            fill.qty,
            fill.price,
            fill.fee,
            order.symbol.partition("/")[2],
            fx,
            now,
            trade_id=fill.trade_id or f"cum:{cumulative}",
        )
