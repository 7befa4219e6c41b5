"""Spread and PnL arithmetic shared by the engines: FX-normalised spreads, the reverse trade, marks.

Floats throughout: this is analysis. What reaches an order or the ledger is converted to Decimal
by the planners and the ledger, never here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from arbitrage.domain.book import Level, MarketSnapshot, OrderBook, split_symbol
from arbitrage.domain.positions import PairPosition, PositionState


def fx_spread_pct(buy_price: float, buy_fx: float, sell_price: float, sell_fx: float) -> float:
    """Gross spread % of buying at `buy_price` and selling at `sell_price`, both in accounting currency."""
    cost = buy_price * buy_fx
    return (sell_price * sell_fx - cost) / cost * 100.0


def net_spread_pct(cost: float, proceeds: float, fees: float) -> float:
    """Net spread % of a buy costing `cost` and a sell bringing `proceeds`, after `fees`.

    All three in the accounting currency; the buy leg's notional is the base, as for
    Opportunity.notional, so that notional * net / 100 is the PnL.
    """
    return (proceeds - cost - fees) / cost * 100.0 if cost > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Sweep:
    """Taking `qty` from one side of a book; a shortfall is valued at the deepest level seen."""

    qty: float
    notional: float  # venue quote currency
    worst_price: float
    complete: bool  # the book held the whole quantity

    @property
    def vwap(self) -> float:
        return self.notional / self.qty if self.qty else 0.0


def sweep(levels: Sequence[Level], qty: float) -> Sweep | None:
    """Value taking `qty` from `levels`; None when the side is empty.

    A book shallower than `qty` is not a reason to stop marking a position: the missing part is
    valued at the deepest price shown, which understates the real cost of a deeper sweep.
    """
    if qty <= 0:
        return None
    # The top alone covers most quantities: read it alone first, as a lazily built side (the
    # mock market's, a replay's) makes every level at the first read past its top.
    try:
        price, size = levels[0]
    except IndexError:  # an empty side
        return None
    if size >= qty:  # what the walk below returns when the first level covers qty
        return Sweep(qty, 0.0 + qty * price, price, True)
    left = qty
    notional = 0.0
    worst = None
    for price, size in levels:
        take = size if size < left else left
        notional += take * price
        left -= take
        worst = price
        if left <= 0:
            break
    if worst is None:  # an empty side
        return None
    complete = left <= 1e-12 * qty
    if not complete:
        notional += left * worst
    return Sweep(qty, notional, worst, complete)


@dataclass(frozen=True, slots=True)
class ReverseTrade:
    """Closing a pair position now: sell back on its buy venue, buy back on its sell venue."""

    qty: float
    sell_vwap: float  # on the position's buy venue (its bids), that venue's quote currency
    sell_worst: float
    buy_vwap: float  # on the position's sell venue (its asks), that venue's quote currency
    buy_worst: float
    sell_fx: float
    buy_fx: float
    proceeds: float  # accounting currency, before fees
    cost: float  # accounting currency, before fees
    fees: float  # accounting currency, both legs
    net_spread_pct: float
    complete: bool  # both books showed enough depth for the whole quantity

    @property
    def pnl(self) -> float:
        return self.proceeds - self.cost - self.fees


def _quote_fx(snapshot: MarketSnapshot, symbol: str) -> float | None:
    return snapshot.fx.get(split_symbol(symbol)[1])


def reverse_trade(
    position: PairPosition, snapshot: MarketSnapshot, fees: Mapping[str, float]
) -> ReverseTrade | None:
    """The reverse trade for the position's open qty at this snapshot's books.

    `fees` maps venue -> taker fee %. None when a book side, an FX rate or a fee is missing.
    """
    qty = float(position.qty)
    buy_book = snapshot.book(position.buy_venue, position.asset)
    sell_book = snapshot.book(position.sell_venue, position.asset)
    if qty <= 0 or buy_book is None or sell_book is None:
        return None
    sell_fx = _quote_fx(snapshot, position.buy_symbol)
    buy_fx = _quote_fx(snapshot, position.sell_symbol)
    sell_fee = fees.get(position.buy_venue)
    buy_fee = fees.get(position.sell_venue)
    if sell_fx is None or buy_fx is None or sell_fee is None or buy_fee is None:
        return None
    sold = sweep(buy_book.bids, qty)
    bought = sweep(sell_book.asks, qty)
    if sold is None or bought is None:
        return None
    proceeds = sold.notional * sell_fx
    cost = bought.notional * buy_fx
    fee_total = proceeds * sell_fee / 100.0 + cost * buy_fee / 100.0
    return ReverseTrade(
        qty=qty,
        sell_vwap=sold.vwap,
        sell_worst=sold.worst_price,
        buy_vwap=bought.vwap,
        buy_worst=bought.worst_price,
        sell_fx=sell_fx,
        buy_fx=buy_fx,
        proceeds=proceeds,
        cost=cost,
        fees=fee_total,
        net_spread_pct=net_spread_pct(cost, proceeds, fee_total),
        complete=sold.complete and bought.complete,
    )


def entry_pnl(position: PairPosition) -> float:
    """The open part's share of the entry result (proceeds - cost - fees), accounting currency."""
    return float(
        position.share(position.entry_proceeds - position.entry_cost - position.entry_fees, position.qty)
    )


def unrealized_pnl(
    position: PairPosition, snapshot: MarketSnapshot, fees: Mapping[str, float]
) -> float | None:
    """What closing the open part now would realize: entry share plus the reverse trade.

    Equals the realized PnL that `position.close_part` books for the same numbers. None when the
    reverse trade cannot be valued (see reverse_trade).
    """
    trade = reverse_trade(position, snapshot, fees)
    if trade is None:
        return None
    return entry_pnl(position) + trade.pnl


def mark_price(book: OrderBook) -> float | None:
    """Mid price, or the one side shown; None for an empty book."""
    bid, ask = book.best_bid, book.best_ask
    if bid is not None and ask is not None:
        return (bid + ask) / 2.0
    return bid if bid is not None else ask


def exposure(position: PairPosition, snapshot: MarketSnapshot) -> float:
    """Mark-to-market notional of the open long leg, accounting currency.

    Falls back to the cost basis when the buy venue's book or rate is missing, so that a data
    gap never makes exposure look smaller than what was paid.
    """
    if position.state is not PositionState.OPEN or position.qty <= 0:
        return 0.0
    book = snapshot.book(position.buy_venue, position.asset)
    fx = _quote_fx(snapshot, position.buy_symbol)
    mark = mark_price(book) if book is not None else None
    if mark is None or fx is None:
        return float(position.open_cost)
    return float(position.qty) * mark * fx


def total_exposure(positions: Iterable[PairPosition], snapshot: MarketSnapshot) -> float:
    return sum(exposure(p, snapshot) for p in positions)
