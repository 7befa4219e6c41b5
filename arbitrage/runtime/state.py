"""The bot's mutable state, owned by the runtime; engines see it only through `view()`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from arbitrage.domain.exit_retry import ExitRetry
from arbitrage.domain.money import ZERO, MarketRules
from arbitrage.domain.positions import PairPosition, PositionState
from arbitrage.domain.trading_day import trading_day
from arbitrage.engines.base import StateView, VenueStatus


@dataclass
class RunCounters:
    """Cumulative counts for the run, shown on the metrics line and exported."""

    ticks: int = 0
    signals: int = 0
    approvals: int = 0
    entries: int = 0  # entry intents carried out
    trades: int = 0  # entries that opened a hedged position
    safety_rejections: int = 0
    rejections: Counter[str] = field(default_factory=Counter)
    sl_triggers: int = 0
    tp_triggers: int = 0
    exits: int = 0
    live_errors: int = 0
    hedge_events: int = 0


@dataclass
class BotState:
    mode: str
    accounting_currency: str
    utc_offset_h: float
    positions: dict[str, PairPosition] = field(default_factory=dict)  # open only
    balances: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    initial_balances: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    rules: dict[tuple[str, str], MarketRules] = field(default_factory=dict)
    venues: dict[str, VenueStatus] = field(default_factory=dict)
    day: str = ""
    daily_realized: Decimal = ZERO
    daily_fees: Decimal = ZERO  # the day's fees and trades, for the operator's console
    daily_trades: int = 0
    run_realized: Decimal = ZERO
    halted: bool = False
    halt_reason: str = ""
    entries_blocked: str | None = None
    redis_heartbeat_age_ms: float | None = None
    unhedged: dict[tuple[str, str], Decimal] = field(default_factory=dict)  # (venue, asset) -> signed qty
    counters: RunCounters = field(default_factory=RunCounters)
    # Positions whose last exit attempts failed: the exit engines wait before trying again.
    exit_retries: dict[str, ExitRetry] = field(default_factory=dict)
    # [start, end) of `day` in epoch seconds: most ticks fall inside and skip the date arithmetic.
    _day_span: tuple[float, float] = field(default=(0.0, 0.0), repr=False)

    def view(self) -> StateView:
        # Shallow copies: engines get a stable picture for the tick even if the executor
        # changes the state between engines.
        return StateView(
            mode=self.mode,
            accounting_currency=self.accounting_currency,
            positions=dict(self.positions),
            balances=self.balances,
            initial_balances=self.initial_balances,
            rules=self.rules,
            venues=self.venues,
            daily_realized_pnl=self.daily_realized,
            halted=self.halted,
            halt_reason=self.halt_reason,
            entries_blocked=self.entries_blocked,
            redis_heartbeat_age_ms=self.redis_heartbeat_age_ms,
            unhedged_qty=dict(self.unhedged),
            exit_retries=dict(self.exit_retries),
        )

    def roll_day(self, ts: float, realized_for_day: Decimal | None = None) -> bool:
        """Move to the trading day of `ts`; True when the day changed (the kill switch re-arms)."""
        start, end = self._day_span
        if start <= ts < end:
            return False
        day = trading_day(ts, self.utc_offset_h)
        offset_s = self.utc_offset_h * 3600.0
        start = (ts + offset_s) // 86400.0 * 86400.0 - offset_s
        self._day_span = (start, start + 86400.0)
        if day == self.day:
            return False
        self.day = day
        self.daily_realized = realized_for_day if realized_for_day is not None else ZERO
        self.daily_fees = ZERO
        self.daily_trades = 0
        return True

    def book_realized(self, amount: Decimal) -> None:
        self.daily_realized += amount
        self.run_realized += amount

    def put_position(self, position: PairPosition) -> None:
        if position.state is PositionState.OPEN and position.qty > 0:
            self.positions[position.position_id] = position
        else:
            self.positions.pop(position.position_id, None)


def position_summary(p: PairPosition) -> dict[str, Any]:
    """An open position as /health and state.json show it (JSON: the quantity as exact text)."""
    return {
        "position_id": p.position_id,
        "asset": p.asset,
        "buy_venue": p.buy_venue,
        "sell_venue": p.sell_venue,
        "qty": str(p.qty),
        "opened_at": p.opened_at,
    }
