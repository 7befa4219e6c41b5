"""Execution planning: turns approved opportunities into entry intents with two IOC limit legs.

Also home of the leg arithmetic shared by exits and hedge repair: a limit price within a slippage
bound on the venue's tick, and the two legs of a reverse trade. Sending is the runtime's job.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from arbitrage.config import AppConfig
from arbitrage.domain.book import split_symbol
from arbitrage.domain.decisions import EntryIntent, ExitIntent, LegPlan, SafetyVerdict
from arbitrage.domain.money import ZERO, MarketRules, dec
from arbitrage.domain.opportunity import Opportunity
from arbitrage.domain.pnl import ReverseTrade
from arbitrage.domain.positions import PairPosition
from arbitrage.engines.base import EngineOutput, Note, TickContext

HUNDRED = Decimal(100)
# The reason of an exit that closes a position without a trade: its open qty is below what the
# venues accept, so it moves to the residual book (domain.legs) as inventory outside positions.
DUST = "DUST"

FreeBalance = Callable[[str, str], Decimal]  # (venue, asset) -> what this tick has not yet planned


def limit_price(price: float | Decimal, side: str, slippage_pct: float, rules: MarketRules) -> Decimal:
    """`price` moved `slippage_pct` against us (up for a buy, down for a sell), on the venue's tick.

    Rounding goes the way that keeps the limit inside the bound (MarketRules.round_price).
    """
    shift = dec(slippage_pct) / HUNDRED
    raw = dec(price) * (1 + shift if side == "buy" else 1 - shift)
    return rules.round_price(raw, side)


def round_to_both(qty: Decimal, a: MarketRules, b: MarketRules) -> Decimal:
    """`qty` rounded down so that both venues accept it: the coarser step first, then the finer."""
    coarse, fine = (a, b) if a.qty_step >= b.qty_step else (b, a)
    return fine.round_qty(coarse.round_qty(qty))


def closable_qty(
    qty: Decimal, sell_rules: MarketRules, buy_rules: MarketRules, sell_price: Decimal, buy_price: Decimal
) -> Decimal:
    """The part of an open `qty` that a reverse trade at these limit prices can close.

    Both legs must close the same amount, so `qty` is rounded down to both venues' steps (the
    coarser one decides). ZERO when that is below either venue's minimum quantity or order value:
    then no reverse trade can ever close it, and sending one only has it refused.
    """
    common = round_to_both(qty, sell_rules, buy_rules)
    if sell_rules.check(common, sell_price) is not None or buy_rules.check(common, buy_price) is not None:
        return ZERO
    return common


def price_floors(qty: Decimal, sell_rules: MarketRules, buy_rules: MarketRules) -> tuple[float, float] | None:
    """The lowest (sell, buy) prices at which closable_qty(qty, ...) is not ZERO; None when it is
    ZERO at any price (below a step or a minimum quantity). Floats: the exit engine screens every
    open position with them each tick, and the exact check is plan_exit's when an exit is planned.
    """
    common = round_to_both(qty, sell_rules, buy_rules)
    if common <= 0 or common < sell_rules.min_qty or common < buy_rules.min_qty:
        return None
    return float(sell_rules.min_notional / common), float(buy_rules.min_notional / common)


def dust_exit(position: PairPosition, spread_pct: float) -> ExitIntent:
    """Close the whole open qty without a trade: it goes to the residual book as inventory."""
    return ExitIntent(
        position_id=position.position_id,
        reason=DUST,
        qty=position.qty,
        sell=None,
        buy=None,
        spread_pct=spread_pct,
    )


def plan_exit(
    position: PairPosition,
    trade: ReverseTrade,
    reason: str,
    slippage_pct: float,
    sell_rules: MarketRules,
    buy_rules: MarketRules,
) -> ExitIntent:
    """The reverse trade as two legs for the open qty both venues can trade (closable_qty).

    Sell back on the position's buy venue, buy back on its sell venue, each limit `slippage_pct`
    beyond the deepest level the reverse trade would take. `sell_rules` are the buy venue's rules
    for its symbol, `buy_rules` the sell venue's. What the rounding leaves open (less than a step)
    is dust the next tick closes. When nothing is closable, the intent is a dust close (dust_exit).
    """
    sell_price = limit_price(trade.sell_worst, "sell", slippage_pct, sell_rules)
    buy_price = limit_price(trade.buy_worst, "buy", slippage_pct, buy_rules)
    qty = closable_qty(position.qty, sell_rules, buy_rules, sell_price, buy_price)
    if qty <= 0:
        return dust_exit(position, trade.net_spread_pct)
    sell = LegPlan(position.buy_venue, position.buy_symbol, "sell", qty, sell_price, trade.sell_fx)
    # More where the venue takes the fee from the coin bought, so what arrives closes `qty`.
    buy_qty = buy_rules.buy_qty_for(qty)
    buy = LegPlan(position.sell_venue, position.sell_symbol, "buy", buy_qty, buy_price, trade.buy_fx)
    return ExitIntent(
        position_id=position.position_id,
        reason=reason,
        qty=qty,
        sell=sell,
        buy=buy,
        spread_pct=trade.net_spread_pct,
    )


class ExecutionPlanner:
    """Sizes and prices both legs of each approved opportunity.

    Balances are shared by the intents of one tick: each intent consumes what it plans, so two
    assets approved together never plan the same quote currency twice.
    """

    def __init__(self, name: str, config: AppConfig) -> None:
        self.name = name
        self._slippage_pct = config.execution.max_slippage_pct
        self._max_position = dec(config.safety.max_position_notional)

    def on_tick(self, ctx: TickContext) -> EngineOutput:
        out = EngineOutput()
        state = ctx.state
        left: dict[tuple[str, str], Decimal] = {}

        def free(venue: str, asset: str) -> Decimal:
            key = (venue, asset)
            if key not in left:
                left[key] = state.balances.get(venue, {}).get(asset, ZERO)
            return left[key]

        for verdict in ctx.decided("safety"):
            if not isinstance(verdict, SafetyVerdict) or not verdict.approved:
                continue
            opp = verdict.opportunity
            planned = self._plan(opp, ctx, free)
            if isinstance(planned, str):
                out.notes.append(Note("INFO", f"skipped {opp.key}: {planned}"))
                continue
            out.decisions.append(planned)
            quote = split_symbol(opp.buy_symbol)[1]
            fee = dec(state.venues[opp.buy_venue].taker_fee_pct)
            left[(opp.buy_venue, quote)] = free(opp.buy_venue, quote) - (
                planned.buy.qty * planned.buy.price * (1 + fee / HUNDRED)
            )
            left[(opp.sell_venue, opp.asset)] = free(opp.sell_venue, opp.asset) - planned.sell.qty
        out.metrics["intents"] = float(len(out.decisions))
        return out

    def _plan(self, opp: Opportunity, ctx: TickContext, free: FreeBalance) -> EntryIntent | str:
        state = ctx.state
        buy_rules = state.rules.get((opp.buy_venue, opp.buy_symbol))
        sell_rules = state.rules.get((opp.sell_venue, opp.sell_symbol))
        if buy_rules is None or sell_rules is None:
            missing = opp.buy_symbol if buy_rules is None else opp.sell_symbol
            return f"no market rules for {missing}"
        buy_status = state.venues.get(opp.buy_venue)
        if buy_status is None:
            return f"no status for venue {opp.buy_venue}"
        buy_price = limit_price(opp.buy_price, "buy", self._slippage_pct, buy_rules)
        sell_price = limit_price(opp.sell_price, "sell", self._slippage_pct, sell_rules)
        if buy_price <= 0 or sell_price <= 0:
            return "limit price rounds to zero"
        fee = dec(buy_status.taker_fee_pct)
        quote = split_symbol(opp.buy_symbol)[1]
        # The venue reserves the limit price (plus its fee), not the VWAP, for an IOC buy.
        by_quote = free(opp.buy_venue, quote) / (buy_price * (1 + fee / HUNDRED))
        by_base = free(opp.sell_venue, opp.asset)
        by_size = self._max_position / (buy_price * dec(opp.buy_fx))
        coin_fee = buy_rules.buy_fee_in_base
        if coin_fee:
            # The buy is grossed up (buy_qty_for): by the fee, and up to one step more.
            by_quote = (by_quote - buy_rules.qty_step) * (1 - coin_fee)
        qty = round_to_both(max(ZERO, min(dec(opp.qty), by_quote, by_base, by_size)), buy_rules, sell_rules)
        # Where the buy venue takes its fee from the coin bought (Binance), buying `qty` would
        # deliver qty * (1 - fee) against `qty` sold: every such entry would leave the pair short
        # by the fee. So the buy is grossed up until what arrives covers what is sold (rounded up
        # to the step: never short). The sell stays on both venues' steps, so the position does
        # too and its exit can close it whole; the part of a step that arrives beyond it is booked
        # as unhedged inventory, which is unwound once past execution.max_unhedged_qty. Booking
        # the whole fee's shortfall there instead would leave every pair unhedged by the fee
        # until an extra order (with its own fee and spread) bought it back.
        buy_qty = buy_rules.buy_qty_for(qty)
        legs = (("buy", buy_rules, buy_qty, buy_price), ("sell", sell_rules, qty, sell_price))
        for side, rules, leg_qty, price in legs:
            problem = rules.check(leg_qty, price)
            if problem is not None:
                return f"{side} leg not tradable: {problem}"
        return EntryIntent(
            opportunity=opp,
            buy=LegPlan(opp.buy_venue, opp.buy_symbol, "buy", buy_qty, buy_price, opp.buy_fx),
            sell=LegPlan(opp.sell_venue, opp.sell_symbol, "sell", qty, sell_price, opp.sell_fx),
        )
