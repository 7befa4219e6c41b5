"""The fleet as Redis has it, read in one go for the views that show it (`arb health`, `arb watch`):
who is alive (heartbeats under redis.key_prefix), what each worker holds of the shared budget, the
day's fleet PnL and, on request, each worker's console state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from arbitrage.store.risk_budget import RiskBudget, WorkerReservations


@dataclass(frozen=True)
class FleetState:
    beats: dict[str, float]  # worker -> its last heartbeat (wall time); alive while present
    held: dict[str, WorkerReservations]
    realized: float | None  # the fleet's realized PnL of the day; None before any worker seeded it
    consoles: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Every worker seen: alive, or dead with reservations left."""
        return sorted(set(self.beats) | set(self.held))


def read_fleet(budget: RiskBudget, redis_prefix: str, day: str, consoles: bool = False) -> FleetState:
    """Raises BudgetUnreachable when Redis cannot answer."""
    beats = budget.heartbeats(redis_prefix)
    held = {w.instance: w for w in budget.workers()}
    state = FleetState(beats, held, budget.fleet_realized(day))
    if consoles:
        state.consoles.update(budget.consoles(redis_prefix, state.names))
    return state
