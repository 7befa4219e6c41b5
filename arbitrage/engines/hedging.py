"""The single-leg handler: what to send when the two legs of an entry or an exit filled unequally.

Pure planning for the runtime, called after both legs come back and after each repair order:
first retry the missing quantity on the lagging venue within the leg's own limit, then unwind
the excess on the over-filled venue, within a bounded number of attempts (see
docs/ARCHITECTURE.md, Single legs). Quantities are the coin that arrived or left (net of a fee
taken from the coin bought); a buy that repairs them is grossed up by such a fee
(MarketRules.buy_qty_for).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from arbitrage.config import ExecutionConfig
from arbitrage.domain.book import OrderBook, walk
from arbitrage.domain.decisions import LegPlan
from arbitrage.domain.money import MarketRules, dec
from arbitrage.engines.execution import limit_price

OPPOSITE = {"buy": "sell", "sell": "buy"}


@dataclass(frozen=True, slots=True)
class LegState:
    """One leg as it stands: `filled_qty` is net of every repair so far.

    A retry's fills add to the lagging leg; an unwind's fills subtract from the leg it unwinds.
    """

    venue: str
    symbol: str
    side: str  # buy | sell, the leg's original side
    planned_price: Decimal  # the leg's limit: the slippage bound a retry must respect
    filled_qty: Decimal


@dataclass(frozen=True, slots=True)
class RepairOrder:
    """The next order to send; `over_bound` when the imbalance it repairs exceeds the unhedged bound."""

    purpose: Literal["retry", "unwind"]
    leg: LegPlan
    imbalance: Decimal
    over_bound: bool


def imbalance(first: LegState, second: LegState) -> Decimal:
    return abs(first.filled_qty - second.filled_qty)


def repair_ruled_out(
    first: LegState, second: LegState, rules: Mapping[str, MarketRules], attempt: int, config: ExecutionConfig
) -> bool:
    """True when no repair order can follow, whatever the books say: the legs are even, the pair's
    repair orders are spent, or what one leg holds over is a grossed-up buy's sliver. The caller
    asks before it reads the books, which after most pairs with a fee taken in the coin would be
    two venue calls (REST reads on a venue without a stream) for nothing."""
    gap = imbalance(first, second)
    if gap <= 0 or attempt >= config.hedge_retries + config.unwind_attempts:
        return True
    lead = first if first.filled_qty > second.filled_qty else second
    lead_rules = rules[lead.venue]
    # A buy grossed up for a fee taken from the coin is rounded up to its venue's step, so it
    # delivers up to a step more than the other leg moves: by design, a residual. Selling that
    # sliver too would leave the position off the coarser step, to be closed as dust later.
    return lead.side == "buy" and bool(lead_rules.buy_fee_in_base) and gap < lead_rules.qty_step


def plan_repair(
    *,
    asset: str,
    first: LegState,
    second: LegState,
    books: Mapping[str, OrderBook],
    rules: Mapping[str, MarketRules],
    fx: Mapping[str, float],
    attempt: int,
    config: ExecutionConfig,
) -> RepairOrder | None:
    """The next repair order for an unequal pair of legs, or None when there is nothing to send.

    `attempt` counts repair orders already sent for this pair (0 for the first call). The aim is
    zero imbalance: any imbalance a venue will trade is repaired, even within the bound. None
    when the legs are equal, when the imbalance is below both venues' step or minimum (a
    residual the runtime accepts if it is within execution.unhedged_limit(asset) and alerts on
    otherwise), or once hedge_retries + unwind_attempts orders have been sent.

    `rules` and `fx` must hold both legs' venues; `books` (this asset's latest book per venue) may
    lack one: no book means no retry there, and an unwind priced from the leg's own limit.
    """
    if repair_ruled_out(first, second, rules, attempt, config):
        return None
    gap = imbalance(first, second)
    lead, lag = (first, second) if first.filled_qty > second.filled_qty else (second, first)
    over = gap > dec(config.unhedged_limit(asset))
    if attempt < config.hedge_retries:
        retry = _retry(lag, gap, books.get(lag.venue), rules[lag.venue])
        if retry is not None:
            return RepairOrder(
                "retry", LegPlan(lag.venue, lag.symbol, lag.side, *retry, fx[lag.venue]), gap, over
            )
    unwind = _unwind(lead, gap, books.get(lead.venue), rules[lead.venue], config.unwind_slippage_pct)
    if unwind is None:
        return None
    side = OPPOSITE[lead.side]
    return RepairOrder("unwind", LegPlan(lead.venue, lead.symbol, side, *unwind, fx[lead.venue]), gap, over)


def _retry(
    lag: LegState, gap: Decimal, book: OrderBook | None, rules: MarketRules
) -> tuple[Decimal, Decimal] | None:
    """(qty, price) to retry at the leg's planned price, if the book can fill it there now."""
    qty = rules.round_qty(gap)
    if lag.side == "buy":
        qty = rules.buy_qty_for(qty)  # `gap` must arrive, the fee taken from the coin bought
    price = rules.round_price(lag.planned_price, lag.side)
    if book is None or rules.check(qty, price) is not None:
        return None
    fill = walk(book.side(lag.side), float(qty), limit=float(price), taking=lag.side)
    if fill.qty < float(qty) * (1 - 1e-9):
        return None
    return qty, price


def _unwind(
    lead: LegState, gap: Decimal, book: OrderBook | None, rules: MarketRules, slippage_pct: float
) -> tuple[Decimal, Decimal] | None:
    """(qty, price) to take the excess back out of the market on the over-filled venue."""
    side = OPPOSITE[lead.side]
    levels = book.side(side) if book is not None else ()
    # Without a book, the leg's own limit is the best reference we have for where the market is.
    reference: float | Decimal = levels[0][0] if levels else lead.planned_price
    price = limit_price(reference, side, slippage_pct, rules)
    qty = rules.round_qty(gap)
    if side == "buy" and rules.buy_fee_in_base:
        # Buying back what was oversold, the fee taken from the coin: as much as arrives within
        # the gap, never more (an unwind past its leg would leave the leg short the other way).
        qty = rules.round_qty(gap / (1 - rules.buy_fee_in_base))
    if price <= 0 or rules.check(qty, price) is not None:
        return None
    return qty, price


def hedge_cost(
    *, side: str, qty: Decimal, entry_price: Decimal, unwind_price: Decimal, fx: float, fee_pct: float
) -> float:
    """What an unwound round trip cost, accounting currency (positive = a loss).

    `side` is the original leg's side: a buy at `entry_price` sold back at `unwind_price`, or a
    sell bought back; taker fees are charged on both trades.
    """
    q, entry, out = float(qty), float(entry_price), float(unwind_price)
    loss = (entry - out) * q if side == "buy" else (out - entry) * q
    fees = (entry + out) * q * fee_pct / 100.0
    return (loss + fees) * fx
