"""What engines decide: verdicts on opportunities, and intents for the executor to carry out."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from arbitrage.domain.opportunity import Opportunity


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    opportunity: Opportunity
    reason: str | None  # None when approved, else a reason code (docs/ARCHITECTURE.md, Safety's reason codes)
    detail: str = ""

    @property
    def approved(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class LegPlan:
    """One IOC limit order to place, before it has a client order id."""

    venue: str
    symbol: str
    side: str  # buy | sell
    qty: Decimal
    price: Decimal  # limit, already within the slippage bound and on the venue's tick
    fx: float  # quote -> accounting currency at decision time


@dataclass(frozen=True, slots=True)
class EntryIntent:
    """Open a pair position: both legs at once."""

    opportunity: Opportunity
    buy: LegPlan
    sell: LegPlan


@dataclass(frozen=True, slots=True)
class ExitIntent:
    """Close (part of) a pair position through the reverse trade, or without one."""

    position_id: str
    reason: str  # TAKE_PROFIT | STOP_LOSS | MAX_HOLD | REDUCE_EXPOSURE | SHUTDOWN | INVENTORY | DUST
    qty: Decimal
    # Both legs or neither: without legs, `qty` closes with no trade (DUST: into the residual book).
    sell: LegPlan | None  # sell back on the position's buy venue
    buy: LegPlan | None  # buy back on the position's sell venue
    spread_pct: float  # the reverse trade's net spread when decided


@dataclass(frozen=True, slots=True)
class InventoryWarning:
    venue: str
    asset: str
    ratio: float
    detail: str


Intent = EntryIntent | ExitIntent
