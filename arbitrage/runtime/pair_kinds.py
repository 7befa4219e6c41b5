"""What differs between an entry and an exit on PairTrader's one pair path.

A `PairKind` says how a pair of its kind is written (its group, its position, its two legs in the
order they are sent), announced and counted; the `PairTrade` it starts says what its legs book: an
entry opens a position with the quantity both legs matched, an exit closes that much of one.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Generic, TypeVar

from arbitrage.domain import ids
from arbitrage.domain.decisions import EntryIntent, ExitIntent, LegPlan
from arbitrage.domain.legs import LegTally
from arbitrage.domain.money import ZERO, booked, dec
from arbitrage.domain.orders import Order
from arbitrage.domain.positions import PairPosition
from arbitrage.runtime.bookkeeper import Bookkeeper
from arbitrage.runtime.state import BotState, RunCounters
from arbitrage.store.ledger import Ledger

log = logging.getLogger("arbitrage.execution")

IntentT = TypeVar("IntentT", EntryIntent, ExitIntent)


@dataclass(frozen=True, slots=True)
class Opening:
    """A pair about to be written: its group, the position its orders belong to, its legs' plans
    in the order they are sent."""

    group: str
    position_id: str
    plans: tuple[LegPlan, LegPlan]


@dataclass(frozen=True, slots=True)
class WrittenPair(Generic[IntentT]):
    """A pair whose PENDING legs are on disk: next sent, or withdrawn unsent."""

    kind: PairKind[IntentT]
    group: str
    intent: IntentT
    legs: tuple[Order, Order]  # in the order they are sent
    plans: tuple[LegPlan, LegPlan]
    at: float  # when it was written

    def tallies(self) -> tuple[LegTally, LegTally]:
        first, second = (
            LegTally(order.venue, order.symbol, order.side, dec(plan.fx), order.price)
            for order, plan in zip(self.legs, self.plans, strict=True)
        )
        return first, second


class PairTrade(ABC):
    """A pair on its way to the ledger: both legs' tallies, in the order they were sent."""

    kind: ClassVar[str]

    def __init__(self, group: str, asset: str, first: LegTally, second: LegTally) -> None:
        self.group = group
        self.asset = asset
        self.first = first
        self.second = second

    @property
    def legs(self) -> tuple[LegTally, LegTally]:
        return self.first, self.second

    @property
    @abstractmethod
    def repair_position(self) -> str | None:
        """The position the pair's repair orders (retries, unwinds) are written for."""

    def not_sent(self, books: Bookkeeper, err: Exception) -> None:
        """The venue calls raised: nothing came back to book (an entry has nothing to count)."""
        return None

    @abstractmethod
    def matched(self) -> Decimal:
        """The quantity both legs filled alike (after their repairs)."""

    @abstractmethod
    def book(self, books: Bookkeeper, matched: Decimal) -> PairPosition | None:
        """The kind's own rows for the matched quantity; inside the booking transaction."""

    @abstractmethod
    def booked(self, books: Bookkeeper, after: PairPosition | None) -> None:
        """What follows the booking's transaction: the event, the exit's backoff, the log."""


class PairKind(ABC, Generic[IntentT]):
    name: ClassVar[str]  # the orders' purpose and the group's kind in the ledger

    @abstractmethod
    def open(
        self, ledger: Ledger, prefix: str, intent: IntentT, tick: int, state: BotState
    ) -> Opening | None:
        """Inside the write transaction: the pair's group (and its rows beside the orders), or
        None to leave the intent out."""

    def gone(self, state: BotState, intent: IntentT) -> str | None:
        """Why a written pair may no longer go out, or None."""
        return None

    @abstractmethod
    def start(self, written: WrittenPair[IntentT], state: BotState) -> PairTrade:
        """The pair's line in the log before its venue calls, and its trade."""

    @abstractmethod
    def count(self, counters: RunCounters, intent: IntentT) -> None:
        """Count the pair once its legs are sent."""


# Entries --------------------------------------------------------------------------------


class Entries(PairKind[EntryIntent]):
    name = "entry"

    def open(
        self, ledger: Ledger, prefix: str, intent: EntryIntent, tick: int, state: BotState
    ) -> Opening | None:
        group = ids.entry_group(prefix, ledger.next_sequence("entry"))
        ledger.record_opportunity(group, tick, intent.opportunity, None)
        return Opening(group, group, (intent.buy, intent.sell))

    def start(self, written: WrittenPair[EntryIntent], state: BotState) -> PairTrade:
        opp = written.intent.opportunity
        buy, sell = written.legs
        log.info(
            "entry %s %s buy %s@%s on %s, sell @%s on %s, net %.3f%% gross %.3f%% fx %s/%s",
            written.group,
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
        buy_tally, sell_tally = written.tallies()
        return EntryTrade(written.group, opp.asset, buy_tally, sell_tally, opp.net_spread_pct, written.at)

    def count(self, counters: RunCounters, intent: EntryIntent) -> None:
        counters.entries += 1


class EntryTrade(PairTrade):
    """An entry: what both legs matched opens a position (closed at once in inventory mode).

    Recovery builds one from the ledger for an entry a crash interrupted before it was booked.
    """

    kind = "entry"

    def __init__(
        self, group: str, asset: str, buy: LegTally, sell: LegTally, spread_pct: float, opened_at: float
    ) -> None:
        super().__init__(group, asset, buy, sell)
        self.spread_pct = spread_pct
        self.opened_at = opened_at

    @property
    def repair_position(self) -> str | None:
        return None

    def matched(self) -> Decimal:
        return max(min(self.first.net, self.second.net), ZERO)

    def book(self, books: Bookkeeper, matched: Decimal) -> PairPosition | None:
        if matched <= 0:
            return None
        buy, sell = self.first, self.second
        position = PairPosition(
            position_id=self.group,
            asset=self.asset,
            buy_venue=buy.venue,
            sell_venue=sell.venue,
            buy_symbol=buy.symbol,
            sell_symbol=sell.symbol,
            qty=matched,
            buy_qty=buy.net,
            sell_qty=sell.net,
            entry_cost=booked(buy.value(matched)),
            entry_proceeds=booked(sell.value(matched)),
            entry_fees=booked(buy.fee_share(matched) + sell.fee_share(matched)),
            entry_spread_pct=self.spread_pct,
            opened_at=self.opened_at,
        )
        books.state.counters.trades += 1
        if books.exit.mode == "none":
            # Inventory arbitrage: the entry spread is the whole trade, no reverse leg.
            position = position.close_without_trade("INVENTORY", self.opened_at)
        books.save_position(position, position.realized_pnl, trades=1)
        return position

    def booked(self, books: Bookkeeper, after: PairPosition | None) -> None:
        books.event(
            "entry",
            group=self.group,
            asset=self.asset,
            bought=self.first.net,
            sold=self.second.net,
            position=after.position_id if after else None,
            hedged=self.matched(),
        )


# Exits ----------------------------------------------------------------------------------


class Exits(PairKind[ExitIntent]):
    name = "exit"

    def open(
        self, ledger: Ledger, prefix: str, intent: ExitIntent, tick: int, state: BotState
    ) -> Opening | None:
        if self.gone(state, intent) is not None or intent.sell is None or intent.buy is None:
            return None
        pid = intent.position_id
        group = ids.exit_group(pid, ledger.next_sequence(f"exit:{pid}"))
        return Opening(group, pid, (intent.sell, intent.buy))

    def gone(self, state: BotState, intent: ExitIntent) -> str | None:
        # Closed since it was written (by an earlier exit of this tick).
        if intent.position_id not in state.positions or intent.sell is None or intent.buy is None:
            return f"position {intent.position_id} no longer open"
        return None

    def start(self, written: WrittenPair[ExitIntent], state: BotState) -> PairTrade:
        intent = written.intent
        position = state.positions[intent.position_id]
        sell, buy = written.legs
        log.info(
            "exit %s %s %s qty %s: sell @%s on %s, buy @%s on %s, reverse spread %.3f%%",
            written.group,
            intent.reason,
            position.asset,
            intent.qty,
            sell.price,
            sell.venue,
            buy.price,
            buy.venue,
            intent.spread_pct,
        )
        first, second = written.tallies()
        return ExitTrade(written.group, position, first, second, intent.reason, intent.spread_pct, intent.qty)

    def count(self, counters: RunCounters, intent: ExitIntent) -> None:
        counters.exits += 1
        if intent.reason == "STOP_LOSS":
            counters.sl_triggers += 1
        elif intent.reason == "TAKE_PROFIT":
            counters.tp_triggers += 1


class ExitTrade(PairTrade):
    """An exit: what both legs matched (up to the position's qty) closes that much of the position.
    Closing less than the legs were sent for is a failed attempt, which the exit engines back off.

    Recovery builds one from the ledger for an exit a crash interrupted before it was booked.
    """

    kind = "exit"

    def __init__(
        self,
        group: str,
        position: PairPosition,
        sell: LegTally,
        buy: LegTally,
        reason: str,
        spread_pct: float,
        sent_qty: Decimal = ZERO,  # the intent's qty: what a failure of the venue calls failed to close
    ) -> None:
        super().__init__(group, position.asset, sell, buy)
        self.position = position
        self.reason = reason
        self.spread_pct = spread_pct
        self.sent_qty = sent_qty

    @property
    def repair_position(self) -> str | None:
        return self.position.position_id

    def not_sent(self, books: Bookkeeper, err: Exception) -> None:
        # Nothing came back to book (the loop logs the error): the attempt failed all the same.
        books.exit_failed(self.position, self.group, self.sent_qty, ZERO, f"{type(err).__name__}: {err}")

    def matched(self) -> Decimal:
        return max(min(self.first.net, self.second.net, self.position.qty), ZERO)

    def book(self, books: Bookkeeper, matched: Decimal) -> PairPosition:
        position = self.position
        if matched <= 0:
            return position
        sell, buy = self.first, self.second
        before = position.realized_pnl
        position = position.close_part(
            matched,
            proceeds=sell.value(matched),
            cost=buy.value(matched),
            fees=sell.fee_share(matched) + buy.fee_share(matched),
            spread_pct=self.spread_pct,
            reason=self.reason,
            ts=books.clock.time(),
        )
        books.save_position(position, position.realized_pnl - before, trades=0)
        return position

    def booked(self, books: Bookkeeper, after: PairPosition | None) -> None:
        assert after is not None  # an exit books the position it closes, closed or not
        closed = self.position.qty - after.qty
        # What the legs were sent for: closing less than that is a failed attempt, backed off.
        sent = min((t.orders[0].qty for t in self.legs if t.orders), default=ZERO)
        if closed < sent:
            books.exit_failed(after, self.group, sent, closed, _legs_outcome(*self.legs))
        else:
            books.exit_done(after, f"exit {self.group} closed {closed}")
        books.event(
            "exit",
            group=self.group,
            position=after.position_id,
            reason=self.reason,
            closed=closed,
            left=after.qty,
            realized_pnl=after.realized_pnl,
        )
        if closed > 0:
            log.info(
                "position %s %s: closed %s, %s left, realized %s %s",
                after.position_id,
                self.reason,
                closed,
                after.qty,
                after.realized_pnl.quantize(Decimal("1")),
                books.accounting_currency,
            )


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


ENTRIES = Entries()
EXITS = Exits()
