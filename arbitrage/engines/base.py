"""The engine contract: a named, pure unit called once per tick.

An engine receives a TickContext (the tick's snapshot, a read-only view of the bot's state and
the decisions of the engines before it) and returns an EngineOutput: decisions, metrics and
notes. It does not log, sleep, read the clock or call a venue; the loop does the I/O around it
and writes its notes to the engine's own logger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from arbitrage.domain.book import MarketSnapshot
from arbitrage.domain.exit_retry import ExitRetry
from arbitrage.domain.money import MarketRules
from arbitrage.domain.pnl import ReverseTrade, entry_pnl, reverse_trade
from arbitrage.domain.positions import PairPosition


@dataclass(frozen=True, slots=True)
class Note:
    """Something for the engine's log: level is a logging level name."""

    level: str
    message: str


@dataclass(frozen=True, slots=True)
class VenueStatus:
    """What the engines may know of a venue's health this tick."""

    name: str
    quote: str
    taker_fee_pct: float
    degraded: bool = False  # circuit breaker open
    ws_lag_ms: float = 0.0
    orders_last_minute: int = 0


@dataclass(frozen=True, slots=True)
class StateView:
    """The bot's state as engines see it this tick. Engines must not mutate it."""

    mode: str
    accounting_currency: str
    positions: Mapping[str, PairPosition]  # open positions by id
    balances: Mapping[str, Mapping[str, Decimal]]  # venue -> asset -> free amount
    initial_balances: Mapping[str, Mapping[str, Decimal]]
    rules: Mapping[tuple[str, str], MarketRules]  # (venue, symbol) -> rules
    venues: Mapping[str, VenueStatus]
    daily_realized_pnl: Decimal
    halted: bool = False
    halt_reason: str = ""
    entries_blocked: str | None = None  # set during shutdown: no new entries
    redis_heartbeat_age_ms: float | None = None  # None when Redis is not in use
    unhedged_qty: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)
    exit_retries: Mapping[str, ExitRetry] = field(default_factory=dict)  # failed exits by position id


@dataclass(slots=True)
class TickContext:
    tick: int
    snapshot: MarketSnapshot
    state: StateView
    decisions: dict[str, list[Any]] = field(default_factory=dict)  # engine name -> its decisions
    _reverse_trades: dict[tuple[str, Decimal], ReverseTrade | None] = field(default_factory=dict)
    _unrealized: dict[tuple[str, Decimal], float | None] = field(default_factory=dict)

    def decided(self, engine: str) -> list[Any]:
        return self.decisions.get(engine, [])

    def reverse_trade(self, position: PairPosition) -> ReverseTrade | None:
        """What closing the position's open qty would trade at this tick's books and taker fees.

        The exit and position engines both value every open position each tick: this walks
        the books once per position and quantity, for both (see domain.pnl.reverse_trade).
        """
        key = (position.position_id, position.qty)
        if key not in self._reverse_trades:
            fees = {venue: status.taker_fee_pct for venue, status in self.state.venues.items()}
            self._reverse_trades[key] = reverse_trade(position, self.snapshot, fees)
        return self._reverse_trades[key]

    def unrealized_pnl(self, position: PairPosition) -> float | None:
        """What closing the open qty now would realize (domain.pnl.unrealized_pnl), once per tick."""
        key = (position.position_id, position.qty)
        if key not in self._unrealized:
            trade = self.reverse_trade(position)
            self._unrealized[key] = None if trade is None else entry_pnl(position) + trade.pnl
        return self._unrealized[key]


@dataclass(slots=True)
class EngineOutput:
    decisions: list[Any] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)


class Engine(Protocol):
    name: str

    def on_tick(self, ctx: TickContext) -> EngineOutput: ...
