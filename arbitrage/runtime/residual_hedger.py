"""Inventory outside positions: what lands there is booked, and an asset's net is unwound when it
exceeds execution.max_unhedged_qty.

Inventory lands in the residual book from a pair whose legs stayed uneven after their repairs, from
the late fills of an order whose outcome was unknown, and from a DUST exit (a position below what
the venues trade, closed without an order). A residual unwind is written on disk before it is sent,
as every order is (see docs/ARCHITECTURE.md, The ledger's write order).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from arbitrage.config import ExecutionConfig
from arbitrage.domain import ids
from arbitrage.domain.book import MarketSnapshot, OrderBook
from arbitrage.domain.decisions import ExitIntent
from arbitrage.domain.legs import LegTally, ResidualBook
from arbitrage.domain.money import ZERO, booked, dec
from arbitrage.domain.orders import Order, OrderRequest
from arbitrage.domain.positions import PairPosition
from arbitrage.runtime import failpoints
from arbitrage.runtime.bookkeeper import Bookkeeper
from arbitrage.runtime.order_sender import OrderSender
from arbitrage.venues.base import Venue

# How long an unwind that no venue would take (below every step or minimum, no book) waits before
# it is priced again while the residual stays the same.
UNTRADABLE_RETRY_S = 5.0

log = logging.getLogger("arbitrage.execution")

BookFn = Callable[[str, str], OrderBook | None]  # (venue, asset) -> a fresh book
Parts = tuple[tuple[str, Decimal], ...]  # an asset's residual quantities by venue, sorted


class ResidualHedger:
    def __init__(
        self,
        execution: ExecutionConfig,
        venue_symbol: Callable[[str, str], str],
        books: Bookkeeper,
        venues: Mapping[str, Venue],
        sender: OrderSender,
        fresh_book: BookFn,
        residuals: ResidualBook,
    ) -> None:
        self._execution = execution
        self._venue_symbol = venue_symbol
        self._books = books
        self._state = books.state
        self._ledger = books.ledger
        self._clock = books.clock
        self._venues = venues
        self._sender = sender
        self._fresh_book = fresh_book
        self._prefix = execution.client_id_prefix
        self.residuals = residuals
        # asset -> (its parts, snapshot time) of an unwind no venue would take. Looking again
        # every tick (a fresh book and the Decimal pricing per venue) cost more than the rest of
        # a quiet tick; the parts changing, or UNTRADABLE_RETRY_S passing, is reason to look again.
        self._untradable: dict[str, tuple[Parts, float]] = {}
        # The residual book as last looked at, when nothing was to unwind: (the book, its items, its
        # version, the snapshot time an untradable unwind is due again). Most ticks leave the book
        # as it was, and looking again at each asset's net (Decimal sums) cost a tenth of a tick.
        self._quiet: tuple[ResidualBook, dict[Any, Any], int, float] | None = None
        # The assets over their bound as of a version of the residual book: (the book, its items,
        # its version, [(asset, its parts sorted, its net)]). Most passes that are not quiet are an
        # untradable unwind's retry coming due with the book unchanged, and summing every asset's
        # net again (Decimal) cost as much as the retries themselves.
        self._over: tuple[ResidualBook, dict[Any, Any], int, list[tuple[str, Parts, Decimal]]] | None = None
        self._slip = dec(execution.unwind_slippage_pct) / 100
        self._limit = dec(execution.max_unhedged_qty)
        self._limits = {a: dec(q) for a, q in execution.max_unhedged_qty_by_asset.items()}

    def hedge_residuals(self, snapshot: MarketSnapshot) -> None:
        """Unwind an asset's unhedged inventory when its net exceeds the bound."""
        book, quiet = self.residuals, self._quiet
        if (
            quiet is not None
            and quiet[0] is book
            and quiet[1] is book.items
            and quiet[2] == book.version
            and snapshot.ts < quiet[3]
        ):
            return  # unchanged since a pass that had nothing to unwind, and no retry due yet
        due = float("inf")
        unwound = False
        for asset, parts, net in self._over_limit():
            known = self._untradable.get(asset)
            if known is not None and known[0] == parts and snapshot.ts < known[1] + UNTRADABLE_RETRY_S:
                due = min(due, known[1] + UNTRADABLE_RETRY_S)
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
            # Nothing is sent until a try succeeds, so one read of a venue's book prices all of
            # the asset's tries there (the first and the net try on the same venue read it twice).
            books: dict[str, OrderBook | None] = {}
            for venue, qty in tries:
                if self._unwind(venue, asset, qty, snapshot, books):
                    self._untradable.pop(asset, None)
                    unwound = True
                    break
            else:
                self._untradable[asset] = (parts, snapshot.ts)
                due = min(due, snapshot.ts + UNTRADABLE_RETRY_S)
        self._state.unhedged = self.residuals.quantities()
        book = self.residuals
        self._quiet = None if unwound else (book, book.items, book.version, due)

    def _over_limit(self) -> list[tuple[str, Parts, Decimal]]:
        """Each asset whose net exceeds its bound, with its parts (venue, qty) sorted and its net,
        in the book's order; computed again only when the book changed."""
        book, over = self.residuals, self._over
        if over is not None and over[0] is book and over[1] is book.items and over[2] == book.version:
            return over[3]
        by_asset: dict[str, list[tuple[str, Decimal]]] = {}
        for (venue, asset), residual in book.items.items():  # one pass, not one per asset
            by_asset.setdefault(asset, []).append((venue, residual.qty))
        found = []
        for asset, held in by_asset.items():
            net = sum((qty for _, qty in held), ZERO)
            if abs(net) > self._limits.get(asset, self._limit):
                found.append((asset, tuple(sorted(held)), net))
        self._over = (book, book.items, book.version, found)
        return found

    def _unwind(
        self,
        venue: str,
        asset: str,
        signed_qty: Decimal,
        snapshot: MarketSnapshot,
        books: dict[str, OrderBook | None],
    ) -> bool:
        """Send the order that takes `signed_qty` out of the market on `venue`; False if it cannot.
        `books`: the asset's books read so far by venue, this pass (read here when missing)."""
        side = "sell" if signed_qty > 0 else "buy"
        symbol = self._venue_symbol(venue, asset)
        rules = self._state.rules.get((venue, symbol))
        if rules is None:
            return False
        qty = rules.round_qty(abs(signed_qty))
        if side == "buy":
            qty = rules.buy_qty_for(qty)  # what arrives must cover it, the fee taken from the coin
        # A quantity below the venue's step or minimum is untradable at any price: known before
        # a book is read (most residuals over a tiny bound are such dust, looked at every few ticks).
        if qty <= 0 or qty < rules.min_qty:
            return False
        if venue not in books:
            books[venue] = self._fresh_book(venue, asset)
        book = books[venue]
        top = None if book is None else book.best_bid if side == "sell" else book.best_ask
        if top is None:
            return False
        slip = self._slip
        price = rules.round_price(dec(top) * (1 - slip if side == "sell" else 1 + slip), side)
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
        self.park_fills(done, fx, f"unwound residual {side} {done.filled_qty}", conclude=True)
        return True

    def park_fills(self, order: Order, fx: float, detail: str, conclude: bool = False) -> None:
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
                self._books.record_hedge(
                    ids.group_of(order.client_order_id), asset, order.venue, "residual", order.filled_qty,
                    realized, detail,
                )  # fmt: skip
                self._books.book_daily(realized, ZERO, realized, trades=0)
            if conclude:
                group = ids.group_of(order.client_order_id)
                self._ledger.conclude_group(group, "residual", self._clock.time())
        self._state.unhedged = self.residuals.quantities()
        if order.filled_qty > 0:
            self._books.refresh_balances(order.venue)

    def park_leftover(self, group: str, asset: str, tally: LegTally, hedged: Decimal) -> Decimal:
        """Park what a pair's leg holds beyond `hedged` in the residual book; returns the result
        that netting it realized. Inside the pair's booking transaction."""
        qty, value = tally.leftover(hedged)
        if not qty:
            return ZERO
        realized = booked(self.residuals.add(tally.venue, asset, qty, value))
        self._books.record_hedge(
            group,
            asset,
            tally.venue,
            "residual",
            abs(qty),
            realized,
            f"{qty} left unhedged on {tally.venue} (bound {self._execution.unhedged_limit(asset)})",
        )
        if abs(self.residuals.net(asset)) > dec(self._execution.unhedged_limit(asset)):
            self._books.alert(
                f"unhedged:{asset}", f"{asset} unhedged {self.residuals.net(asset)} after {group}"
            )
        return realized

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
            self._books.save_position(after, after.realized_pnl - realized_before, trades=0)
            netted = ZERO
            for venue, signed in ((position.buy_venue, qty), (position.sell_venue, -qty)):
                realized = booked(self.residuals.add(venue, position.asset, signed, ZERO))
                netted += realized
                self._books.record_hedge(
                    position.position_id, position.asset, venue, "residual", qty, realized,
                    f"dust of {position.position_id}: {signed} below what the venues trade, "
                    f"moved to inventory outside positions",
                )  # fmt: skip
            self._books.book_daily(netted, ZERO, netted, trades=0)
        self._state.unhedged = self.residuals.quantities()
        log.info(
            "position %s %s: %s %s closed as %s into the residual book, realized %s %s",
            after.position_id, intent.reason, qty, position.asset, "dust",
            after.realized_pnl.quantize(Decimal("1")), self._books.accounting_currency,
        )  # fmt: skip
        self._books.event(
            "exit", group=position.position_id, position=position.position_id, reason=intent.reason,
            closed=qty, left=after.qty, realized_pnl=after.realized_pnl,
        )  # fmt: skip
        self._books.exit_done(after, f"{qty} closed as dust into the residual book")
        return after
