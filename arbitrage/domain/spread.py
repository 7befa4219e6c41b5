"""The net spread of buying at one venue's ask and selling at another's bid, FX-normalised and
after both taker fees: the one definition the signal engine and the benchmark's bare baseline share.

Floats, as all analysis here (see domain.pnl); the signal engine calls it for every asset and
ordered venue pair of every tick, so it is two plain functions, the rates computed once per venue.
"""

from __future__ import annotations


def taker_rates(fx: float, fee_pct: float) -> tuple[float, float]:
    """Per quote unit, in the accounting currency: what buying costs and what selling brings,
    the taker fee included."""
    return fx * (1.0 + fee_pct / 100.0), fx * (1.0 - fee_pct / 100.0)


def taker_net_spread_pct(
    ask: float, buy_fx: float, buy_cost: float, bid: float, sell_proceeds: float
) -> float:
    """Net spread % of buying at `ask` and selling at `bid`, after both taker fees.

    `buy_cost` and `sell_proceeds` are the two venues' taker_rates; the base is the buy's notional
    before its fee, as for Opportunity.notional, so that notional * net / 100 is the PnL.
    """
    return (bid * sell_proceeds - ask * buy_cost) / (ask * buy_fx) * 100.0
