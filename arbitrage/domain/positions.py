"""Pair positions: long the asset on the buy venue, short of inventory on the sell venue.

All amounts are Decimal in the accounting currency, converted at each fill's FX rate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from arbitrage.domain.money import ZERO, booked


class PositionState(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"


@dataclass(frozen=True, slots=True)
class PairPosition:
    position_id: str
    asset: str
    buy_venue: str
    sell_venue: str
    buy_symbol: str
    sell_symbol: str
    qty: Decimal  # hedged quantity still open
    # The coin that arrived on the buy venue at entry (less a fee taken from it and any unwind);
    # what it holds beyond `qty` (part of a step) is unhedged inventory, not the position's.
    buy_qty: Decimal
    sell_qty: Decimal  # filled on the sell venue at entry, net of any unwind
    entry_cost: Decimal  # paid on the buy venue for the hedged quantity, accounting currency
    entry_proceeds: Decimal  # received on the sell venue for the hedged quantity
    entry_fees: Decimal
    entry_spread_pct: float
    opened_at: float
    state: PositionState = PositionState.OPEN
    closed_qty: Decimal = ZERO
    exit_proceeds: Decimal = ZERO  # received selling back on the buy venue
    exit_cost: Decimal = ZERO  # paid buying back on the sell venue
    exit_fees: Decimal = ZERO
    exit_spread_pct: float | None = None
    exit_reason: str | None = None
    closed_at: float | None = None
    realized_pnl: Decimal = ZERO

    @property
    def entry_qty(self) -> Decimal:
        return self.qty + self.closed_qty

    def share(self, amount: Decimal, qty: Decimal) -> Decimal:
        """`qty`'s pro-rata share of an entry amount."""
        return amount * qty / self.entry_qty if self.entry_qty else ZERO

    @property
    def open_cost(self) -> Decimal:
        """Cost basis of the open part on the buy venue (its exposure at entry)."""
        return self.share(self.entry_cost, self.qty)

    def close_part(
        self,
        qty: Decimal,
        proceeds: Decimal,
        cost: Decimal,
        fees: Decimal,
        spread_pct: float,
        reason: str,
        ts: float,
    ) -> PairPosition:
        """The position after closing `qty` through the reverse trade.

        Each closed part books its share of the entry spread and entry fees plus its exit trade.
        """
        qty = min(qty, self.qty)
        realized = booked(
            self.share(self.entry_proceeds - self.entry_cost - self.entry_fees, qty) + proceeds - cost - fees
        )
        left = self.qty - qty
        closed = left <= 0
        return replace(
            self,
            qty=left,
            closed_qty=self.closed_qty + qty,
            exit_proceeds=self.exit_proceeds + proceeds,
            exit_cost=self.exit_cost + cost,
            exit_fees=self.exit_fees + fees,
            realized_pnl=self.realized_pnl + realized,
            exit_spread_pct=spread_pct,
            exit_reason=reason,
            state=PositionState.CLOSED if closed else PositionState.OPEN,
            closed_at=ts if closed else None,
        )

    def close_without_trade(self, reason: str, ts: float) -> PairPosition:
        """Inventory arbitrage (exit.mode none): the entry spread is the whole result."""
        return self.close_part(self.qty, ZERO, ZERO, ZERO, 0.0, reason, ts)
